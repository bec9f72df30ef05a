// callback._callback: the embedding API (callback/embedded.hpp) and its value types for
// Python. The package callback/ (__init__.py) re-exports it and adds the asyncio side.
//
// Threads: every call that may wait for the service thread releases the GIL first, and
// event handlers take it on the service thread; so Python threads run while the service
// works, and a handler never waits for a thread that waits for the service.
#include <callback/embedded.hpp>
#include <callback/json.hpp>
#include <callback/version.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

namespace py = pybind11;
using namespace callback;

namespace {

// --- errors --------------------------------------------------------------------------------

std::string_view kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid: return "invalid";
    case ErrorKind::unauthorized: return "unauthorized";
    case ErrorKind::payment_required: return "payment_required";
    case ErrorKind::forbidden: return "forbidden";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::method_not_allowed: return "method_not_allowed";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::too_large: return "too_large";
    case ErrorKind::unsupported_media: return "unsupported_media";
    case ErrorKind::rate_limited: return "rate_limited";
    case ErrorKind::internal: return "internal";
    case ErrorKind::unavailable: return "unavailable";
  }
  return "internal";
}

// Raises the callback.errors class for the error's kind (with the GIL held).
[[noreturn]] void raise(const Error& error) {
  auto errors = py::module_::import("callback.errors");
  const std::string kind(kind_name(error.kind));
  py::object cls = errors.attr("KINDS").attr("get")(kind, errors.attr("Error"));
  py::object instance = cls(error.code, error.message, error.field, error.rule, kind);
  PyErr_SetObject(cls.ptr(), instance.ptr());
  throw py::error_already_set();
}

template <class T>
T value_or_raise(Result<T> result) {
  if (!result) raise(result.error());
  return std::move(*result);
}
void ok_or_raise(const Status& status) {
  if (!status) raise(status.error());
}

Error invalid(std::string code, std::string message, std::string field) {
  return Error{std::move(code), std::move(message), std::move(field)};
}

// --- conversions ---------------------------------------------------------------------------

py::object decimal_of(const Money& money) { return py::module_::import("decimal").attr("Decimal")(money.format()); }

// A Decimal (or an int, or a str of one) as exact text; never a float.
std::string amount_text(const py::handle& value, const std::string& field) {
  auto decimal = py::module_::import("decimal").attr("Decimal");
  if (py::isinstance<py::bool_>(value) || py::isinstance<py::float_>(value)) {
    throw py::type_error(field + ": money must be a decimal.Decimal (or str or int), not " +
                         std::string(py::str(value.get_type().attr("__name__"))) +
                         ": a float cannot hold 0.10 exactly");
  }
  if (py::isinstance(value, decimal)) {
    if (!value.attr("is_finite")().cast<bool>()) raise(invalid("invalid_amount", "not a finite amount", field));
    // Before formatting: Decimal('1E+999999999') would be a string of a billion digits.
    const auto magnitude = value.attr("adjusted")().cast<long long>();
    if (magnitude > 30 || magnitude < -30) {
      raise(invalid("invalid_amount", "out of range for money (10^" + std::to_string(magnitude) + ")", field));
    }
    return py::str(value.attr("__format__")("f"));
  }
  if (py::isinstance<py::int_>(value)) return py::str(value);
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  throw py::type_error(field + ": money must be a decimal.Decimal (or str or int), not " +
                       std::string(py::str(value.get_type().attr("__name__"))));
}

py::object datetime_of(Timestamp at) {
  // Kept for the life of the process: a static py::object would be released after Python has gone.
  static const py::object& datetime = *new py::object(py::module_::import("datetime"));
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(at.time_since_epoch()).count();
  auto epoch = datetime.attr("datetime")(1970, 1, 1, 0, 0, 0, 0, datetime.attr("timezone").attr("utc"));
  return epoch + datetime.attr("timedelta")(py::arg("microseconds") = micros);
}
py::object datetime_of(const std::optional<Timestamp>& at) { return at ? datetime_of(*at) : py::none(); }

Timestamp timestamp_of(const py::handle& value, const std::string& field) {
  // Kept for the life of the process: a static py::object would be released after Python has gone.
  static const py::object& datetime = *new py::object(py::module_::import("datetime"));
  if (!py::isinstance(value, datetime.attr("datetime"))) {
    throw py::type_error(field + ": expected a datetime.datetime");
  }
  if (value.attr("utcoffset")().is_none()) {
    raise(invalid("naive_datetime", "give a timezone-aware datetime (UTC: datetime.timezone.utc)", field));
  }
  // Exact, in whole microseconds, and within what a Timestamp holds (1678-2261).
  auto epoch = datetime.attr("datetime")(1970, 1, 1, 0, 0, 0, 0, datetime.attr("timezone").attr("utc"));
  const py::int_ micros = (value - epoch).attr("__floordiv__")(datetime.attr("timedelta")(py::arg("microseconds") = 1));
  const auto limit = py::int_(std::chrono::duration_cast<std::chrono::microseconds>(Timestamp::duration::max()).count());
  if (micros.attr("__abs__")().attr("__ge__")(limit).cast<bool>()) {
    raise(invalid("out_of_range", "a date between the years 1678 and 2261", field));
  }
  return Timestamp{std::chrono::duration_cast<Timestamp::duration>(std::chrono::microseconds(micros.cast<std::int64_t>()))};
}

// Seconds from Python as a duration: finite, 0 or more; None or anything over a year is a year.
std::chrono::milliseconds seconds_of(const std::optional<double>& seconds, const std::string& field) {
  constexpr double year = 365.0 * 24 * 3600;
  if (!seconds) return std::chrono::milliseconds(static_cast<std::int64_t>(year * 1000));
  if (!std::isfinite(*seconds) && *seconds > 0) return seconds_of(std::nullopt, field);
  if (!(*seconds >= 0)) raise(invalid("invalid_timeout", "must be 0 or more seconds", field));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(*seconds, year) * 1000));
}

// The service thread's Python thread state, made at its first event and kept: otherwise each
// acquisition of the GIL from a thread Python did not start makes one and deletes it again
// (PyThreadState_New, then PyThreadState_Clear and delete), which cost ~80 us an event.
void keep_thread_state() {
  thread_local bool kept = false;
  if (kept) return;
  py::gil_scoped_acquire gil;
  gil.inc_ref();  // one reference more than acquisitions: the state outlives this one
  kept = true;
}

// A Python callable called on the service thread: takes the GIL, and turns a Python
// exception into a C++ one with its text (the service logs it and goes on). Dropped with the
// GIL held too.
class PyHandler {
 public:
  explicit PyHandler(py::function fn)
      : fn_(new py::function(std::move(fn)), [](py::function* f) {
          if (!Py_IsInitialized()) return;  // at interpreter exit: leave it
          py::gil_scoped_acquire gil;
          delete f;
        }) {}
  void operator()(const CallEvent& event) const {
    if (_Py_IsFinalizing()) return;  // Python is going away: nobody is left to tell
    keep_thread_state();
    py::gil_scoped_acquire gil;
    try {
      (*fn_)(event);
    } catch (py::error_already_set& e) {
      std::string what = e.what();
      e.restore();
      PyErr_Clear();
      throw std::runtime_error(what);
    }
  }

 private:
  std::shared_ptr<py::function> fn_;
};

// A Subscription whose reset() never holds the GIL while it waits for a handler that wants it.
class PySubscription {
 public:
  explicit PySubscription(Subscription s) : s_(std::move(s)) {}
  ~PySubscription() { close(); }
  void close() {
    if (!s_.active()) return;
    if (Py_IsInitialized() && PyGILState_Check()) {
      py::gil_scoped_release release;
      s_.reset();
    } else {
      s_.reset();
    }
  }
  [[nodiscard]] bool active() const { return s_.active(); }

 private:
  Subscription s_;
};

// The service and what it logs to (a file, when asked).
class PyService {
 public:
  PyService(const std::optional<std::string>& config_file, const std::optional<std::string>& config_json,
            const std::vector<std::string>& plugin_dirs, const std::optional<std::string>& log_file,
            double engine_wait) {
    EmbeddedOptions options;
    for (const auto& d : plugin_dirs) options.plugin_dirs.emplace_back(d);
    if (log_file) {
      log_ = std::make_unique<std::ofstream>(*log_file, std::ios::app);
      if (!*log_) raise(invalid("unwritable", "cannot open " + *log_file + " for writing", "log_file"));
      options.log = log_.get();
    }
    options.engine_wait = seconds_of(engine_wait, "engine_wait");
    if (config_file.has_value() == config_json.has_value()) {
      throw py::type_error("give exactly one of config_file or config (a JSON text or dict)");
    }
    Result<std::unique_ptr<EmbeddedService>> opened = Error{};
    {
      py::gil_scoped_release release;
      opened = config_file ? EmbeddedService::open(*config_file, options)
                           : EmbeddedService::open_text(*config_json, options);
    }
    service_ = value_or_raise(std::move(opened));
  }
  ~PyService() {
    if (service_) {
      py::gil_scoped_release release;
      service_.reset();
    }
  }
  EmbeddedService& operator*() {
    if (!service_) raise(Error{"closed", "the service was closed", {}}.as(ErrorKind::unavailable));
    return *service_;
  }
  void close(std::chrono::seconds grace) {
    if (!service_) return;
    py::gil_scoped_release release;
    service_->stop(grace);
  }

 private:
  std::unique_ptr<std::ofstream> log_;
  std::unique_ptr<EmbeddedService> service_;
};

std::optional<std::string> text_or_none(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

py::object money_or_none(const std::optional<Money>& m) { return m ? py::cast(*m) : py::none(); }


}  // namespace

PYBIND11_MODULE(_callback, m) {
  m.doc() = "callback: phone-to-phone callbacks on Asterisk, embedded (see help(callback.Service)).";
  m.attr("__version__") = CALLBACK_VERSION_STRING;

  py::enum_<CallState>(m, "CallState", "Where a callback is.")
      .value("created", CallState::created)
      .value("authorizing", CallState::authorizing)
      .value("dialing_a", CallState::dialing_a)
      .value("a_answered", CallState::a_answered)
      .value("dialing_b", CallState::dialing_b)
      .value("bridged", CallState::bridged)
      .value("completed", CallState::completed)
      .value("failed", CallState::failed)
      .value("canceled", CallState::canceled);

  py::class_<Money>(m, "Money", "An exact amount in a currency. `amount` is a decimal.Decimal.")
      .def(py::init([](const py::object& amount, const std::string& currency) {
             auto code = Currency::of(currency);
             if (!code) raise(code.error().at("currency"));
             return value_or_raise(Money::parse(amount_text(amount, "amount"), *code, Money::Precision::rate));
           }),
           py::arg("amount"), py::arg("currency"))
      .def_property_readonly("amount", [](const Money& money) { return decimal_of(money); })
      .def_property_readonly("currency", [](const Money& money) { return std::string(money.currency().code()); })
      .def("__eq__", [](const Money& a, const Money& b) { return a == b; })
      .def("__str__", [](const Money& money) { return money.format() + " " + std::string(money.currency().code()); })
      .def("__repr__", [](const Money& money) {
        return "Money(Decimal('" + money.format() + "'), '" + std::string(money.currency().code()) + "')";
      });

  py::class_<PhoneNumber>(m, "PhoneNumber", "A phone number in E.164 digits (no '+').")
      .def(py::init([](const std::string& e164) { return value_or_raise(PhoneNumber::from_e164(e164)); }),
           py::arg("e164"))
      .def_property_readonly("digits", &PhoneNumber::digits)
      .def_property_readonly("e164", &PhoneNumber::e164)
      .def("__eq__", [](const PhoneNumber& a, const PhoneNumber& b) { return a.digits() == b.digits(); })
      .def("__hash__", [](const PhoneNumber& p) { return py::hash(py::str(p.digits())); })
      .def("__str__", &PhoneNumber::e164)
      .def("__repr__", [](const PhoneNumber& p) { return "PhoneNumber('" + p.digits() + "')"; });

  py::class_<HangupCause>(m, "HangupCause", "Asterisk's hangup cause (Q.850), and our own 1000 canceled, 1001 engine lost.")
      .def(py::init([](int code) { return HangupCause{code}; }), py::arg("code"))
      .def_static("from_name", [](const std::string& name) {
        auto cause = HangupCause::from_name(name);
        if (!cause) raise(invalid("unknown_cause", "no hangup cause named \"" + name + "\"", "name"));
        return *cause;
      })
      .def_property_readonly("code", &HangupCause::code)
      .def_property_readonly("name", [](const HangupCause& c) { return std::string(c.name()); })
      .def_property_readonly("description", [](const HangupCause& c) { return std::string(c.description()); })
      .def_property_readonly("outcome", [](const HangupCause& c) { return std::string(to_string(c.outcome())); })
      .def("__eq__", [](const HangupCause& a, const HangupCause& b) { return a.code() == b.code(); })
      .def("__repr__", [](const HangupCause& c) { return "HangupCause(" + std::to_string(c.code()) + ")"; });

  py::class_<Leg>(m, "Leg", "One leg of a callback: A (called first) or B.")
      .def_property_readonly("role", [](const Leg& l) { return std::string(to_string(l.role)); })
      .def_property_readonly("number", [](const Leg& l) { return l.number ? py::cast(*l.number) : py::none(); })
      .def_property_readonly("state", [](const Leg& l) { return std::string(to_string(l.state)); })
      .def_readonly("channel", &Leg::channel)
      .def_readonly("uniqueid", &Leg::uniqueid)
      .def_property_readonly("started_at", [](const Leg& l) { return datetime_of(l.started); })
      .def_property_readonly("answered_at", [](const Leg& l) { return datetime_of(l.answered); })
      .def_property_readonly("ended_at", [](const Leg& l) { return datetime_of(l.ended); })
      .def_readonly("cause", &Leg::cause)
      .def_property_readonly("billsec", [](const Leg& l) { return l.billsec().count(); });

  py::class_<CallEvent>(m, "Callback",
                        "A callback as one event left it: its state, legs, and once final its outcome and cost.")
      .def_property_readonly("id", [](const CallEvent& e) { return e.call.id(); })
      .def_property_readonly("state", [](const CallEvent& e) { return e.call.state(); })
      .def_readonly("previous_state", &CallEvent::previous)
      .def_property_readonly("final", [](const CallEvent& e) { return is_final(e.call.state()); })
      .def_property_readonly("caller", [](const CallEvent& e) { return e.call.request().caller; })
      .def_property_readonly("callee", [](const CallEvent& e) {
        return e.call.request().callee ? py::cast(*e.call.request().callee) : py::none();
      })
      .def_property_readonly("account", [](const CallEvent& e) -> std::optional<std::string> {
        if (const auto* a = std::get_if<AccountId>(&e.call.request().payer)) return a->value;
        return std::nullopt;
      })
      .def_property_readonly("campaign", [](const CallEvent& e) -> std::optional<std::string> {
        if (const auto* c = std::get_if<CampaignId>(&e.call.request().payer)) return c->value;
        return std::nullopt;
      })
      .def_property_readonly("outcome", [](const CallEvent& e) { return text_or_none(e.outcome); })
      .def_property_readonly("cost", [](const CallEvent& e) { return money_or_none(e.cost); })
      .def_property_readonly("limit_seconds", [](const CallEvent& e) { return e.limit.count(); })
      .def_property_readonly("announcement", [](const CallEvent& e) -> std::optional<std::string> {
        if (!e.announcement) return std::nullopt;
        return std::string(to_string(*e.announcement));
      })
      .def_property_readonly("error", [](const CallEvent& e) -> py::object {
        if (!e.error) return py::none();
        auto errors = py::module_::import("callback.errors");
        const std::string kind(kind_name(e.error->kind));
        py::object cls = errors.attr("KINDS").attr("get")(kind, errors.attr("Error"));
        return cls(e.error->code, e.error->message, e.error->field, e.error->rule, kind);
      })
      .def_property_readonly("a", [](const CallEvent& e) { return e.call.leg_a(); })
      .def_property_readonly("b", [](const CallEvent& e) { return e.call.leg_b(); })
      .def_property_readonly("created_at", [](const CallEvent& e) { return datetime_of(e.call.created_at()); })
      .def_property_readonly("updated_at", [](const CallEvent& e) { return datetime_of(e.call.updated_at()); })
      .def_readonly("replayed", &CallEvent::replayed)
      .def("to_json", [](const CallEvent& e) { return boost::json::serialize(to_json(e)); },
           "The REST API's callback object, as JSON text.")
      .def("__repr__", [](const CallEvent& e) {
        return "<Callback " + e.call.id() + " " + std::string(to_string(e.call.state())) +
               (e.outcome.empty() ? "" : " " + e.outcome) + ">";
      });

  py::class_<Cdr>(m, "Cdr", "One leg's call detail record, with Asterisk's CDR columns.")
      .def_property_readonly("calldate", [](const Cdr& c) { return datetime_of(c.calldate); })
      .def_readonly("clid", &Cdr::clid)
      .def_readonly("src", &Cdr::src)
      .def_readonly("dst", &Cdr::dst)
      .def_readonly("dcontext", &Cdr::dcontext)
      .def_readonly("channel", &Cdr::channel)
      .def_readonly("dstchannel", &Cdr::dstchannel)
      .def_readonly("lastapp", &Cdr::lastapp)
      .def_readonly("lastdata", &Cdr::lastdata)
      .def_readonly("duration", &Cdr::duration)
      .def_readonly("billsec", &Cdr::billsec)
      .def_property_readonly("disposition", [](const Cdr& c) { return std::string(to_string(c.disposition)); })
      .def_readonly("amaflags", &Cdr::amaflags)
      .def_readonly("accountcode", &Cdr::accountcode)
      .def_readonly("uniqueid", &Cdr::uniqueid)
      .def_readonly("userfield", &Cdr::userfield)
      .def_readonly("callback_id", &Cdr::callback_id)
      .def_property_readonly("leg", [](const Cdr& c) { return std::string(to_string(c.leg)); })
      .def_property_readonly("cost", [](const Cdr& c) { return money_or_none(c.cost); })
      .def_readonly("hangup_cause", &Cdr::hangup_cause)
      .def("__repr__", [](const Cdr& c) {
        return "<Cdr " + c.callback_id + " " + std::string(to_string(c.leg)) + " " + c.src + "->" + c.dst + " " +
               std::string(to_string(c.disposition)) + " " + std::to_string(c.billsec) + "s>";
      });

  py::class_<Account>(m, "Account", "A prepaid account.")
      .def_readonly("id", &Account::id)
      .def_readonly("name", &Account::name)
      .def_property_readonly("currency", [](const Account& a) { return std::string(a.currency.code()); })
      .def_readonly("balance", &Account::balance)
      .def_readonly("credit_limit", &Account::credit_limit)
      .def_readonly("reserved", &Account::reserved)
      .def_property_readonly("active", [](const Account& a) { return a.status == AccountStatus::active; })
      .def_readonly("tariff", &Account::tariff)
      .def_readonly("numbers", &Account::caller_numbers)
      .def_readonly("emails", &Account::emails)
      .def_readonly("language", &Account::language)
      .def("__repr__", [](const Account& a) {
        return "<Account " + a.id + " " + a.balance.format() + " " + std::string(a.currency.code()) + ">";
      });

  py::class_<LedgerEntry>(m, "LedgerEntry", "One movement of an account's money.")
      .def_readonly("id", &LedgerEntry::id)
      .def_readonly("account_id", &LedgerEntry::account_id)
      .def_readonly("amount", &LedgerEntry::amount)
      .def_property_readonly("kind", [](const LedgerEntry& l) { return std::string(to_string(l.kind)); })
      .def_readonly("reference", &LedgerEntry::reference)
      .def_property_readonly("at", [](const LedgerEntry& l) { return datetime_of(l.at); })
      .def_readonly("balance_after", &LedgerEntry::balance_after);

  py::class_<Rate>(m, "Rate", "A rate deck line: longest prefix wins.")
      .def_readonly("prefix", &Rate::prefix)
      .def_readonly("description", &Rate::description)
      .def_readonly("price_per_minute", &Rate::price_per_minute)
      .def_property_readonly("initial_increment", [](const Rate& r) { return r.initial_increment.count(); })
      .def_property_readonly("subsequent_increment", [](const Rate& r) { return r.subsequent_increment.count(); })
      .def_readonly("connection_fee", &Rate::connection_fee)
      .def_property_readonly("minimum_duration", [](const Rate& r) { return r.minimum_duration.count(); })
      .def("cost", [](const Rate& r, std::int64_t billsec) { return r.cost(std::chrono::seconds(billsec)); },
           py::arg("billsec"), "What a call of `billsec` seconds costs at this rate.");

  py::class_<PySubscription>(m, "Subscription", "Events keep coming until close() (or garbage collection).")
      .def("close", &PySubscription::close)
      .def_property_readonly("active", &PySubscription::active)
      .def("__enter__", [](PySubscription& s) -> PySubscription& { return s; })
      .def("__exit__", [](PySubscription& s, const py::args&) { s.close(); });

  py::class_<CallbackTicket, std::shared_ptr<CallbackTicket>>(m, "CallbackHandle", "One submitted callback.")
      .def_property_readonly("id", &CallbackTicket::id)
      .def_property_readonly("latest", &CallbackTicket::latest, "The callback as its latest event left it.")
      .def_property_readonly("finished", &CallbackTicket::finished)
      .def(
          "wait",
          [](const CallbackTicket& t, std::optional<double> timeout) -> py::object {
            // In slices, so that Ctrl-C (or any signal handler that raises) ends the wait.
            const auto deadline = std::chrono::steady_clock::now() + seconds_of(timeout, "timeout");
            std::optional<CallEvent> done;
            for (;;) {
              const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now());
              {
                py::gil_scoped_release release;
                done = t.wait(std::clamp(left, std::chrono::milliseconds{0}, std::chrono::milliseconds{100}));
              }
              if (done || t.orphaned() || left <= std::chrono::milliseconds{100}) break;
              if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            }
            if (done) return py::cast(*done);
            if (t.orphaned()) {
              raise(Error{"stopped", "the service stopped before callback " + t.id() + " ended", "id"}.as(
                  ErrorKind::unavailable));
            }
            raise(Error{"timeout", "callback " + t.id() + " has not ended yet", "timeout"}.as(ErrorKind::unavailable));
          },
          py::arg("timeout") = py::none(), "Waits for the final event (raises Unavailable with code 'timeout').")
      .def("cancel", [](CallbackTicket& t) {
        Status status = ok_status();
        {
          py::gil_scoped_release release;
          status = t.cancel();
        }
        ok_or_raise(status);
      }, "Cancels it at whatever stage it is; wait() then gives its final event. Conflict if it has ended.")
      .def("__repr__", [](const CallbackTicket& t) { return "<CallbackHandle " + t.id() + ">"; });

  py::class_<PyService>(m, "_Service")
      .def(py::init<const std::optional<std::string>&, const std::optional<std::string>&,
                    const std::vector<std::string>&, const std::optional<std::string>&, double>(),
           py::arg("config_file") = py::none(), py::arg("config_json") = py::none(),
           py::arg("plugin_dirs") = std::vector<std::string>{}, py::arg("log_file") = py::none(),
           py::arg("engine_wait") = 10.0)
      .def("start",
           [](PyService& s) {
             Status status = ok_status();
             {
               auto& service = *s;
               py::gil_scoped_release release;
               status = service.start();
             }
             ok_or_raise(status);
           }, "Starts the service (engines connect, triggers and front ends start) and waits for an Asterisk server; raises Unavailable (engine_unavailable) if none is ready within engine_wait.")
      .def("stop", [](PyService& s, double grace) {
             s.close(std::chrono::duration_cast<std::chrono::seconds>(seconds_of(grace, "grace")));
           },
           py::arg("grace") = 0.0, "Stops gracefully: new callbacks are refused, those in flight get `grace` seconds, then are canceled; CDRs and money are settled.")
      .def_property_readonly("running", [](PyService& s) { return (*s).running(); })
      .def(
          "submit",
          [](PyService& s, const std::string& caller, const std::optional<std::string>& callee,
             const std::optional<std::string>& account, const std::optional<std::string>& campaign,
             const std::optional<std::string>& pin, const std::optional<std::int64_t>& limit,
             const std::optional<std::string>& language, const std::optional<std::string>& idempotency_key,
             const std::map<std::string, std::string>& metadata, const std::optional<py::function>& on_event) {
            if (account.has_value() == campaign.has_value()) {
              raise(invalid("missing_field", "give exactly one of account or campaign", "account"));
            }
            CallbackForm form{.caller = caller,
                              .callee = callee.value_or(""),
                              .origin = Origin::api,
                              .idempotency_key = idempotency_key.value_or(""),
                              .secret = pin.value_or(""),
                              .language = language.value_or("")};
            form.payer = account ? Payer{AccountId{*account}} : Payer{CampaignId{*campaign}};
            if (limit) {
              if (*limit <= 0) raise(invalid("invalid_limit", "the limit must be a positive number of seconds", "limit"));
              form.limit = std::chrono::seconds(*limit);
            }
            form.metadata.insert(metadata.begin(), metadata.end());
            form.ask_callee = !callee.has_value();
            EmbeddedService::EventHandler handler;
            if (on_event) handler = PyHandler(*on_event);
            auto& service = *s;
            Result<std::shared_ptr<CallbackTicket>> ticket = Error{};
            {
              py::gil_scoped_release release;
              ticket = service.submit(std::move(form), std::move(handler));
            }
            return value_or_raise(std::move(ticket));
          },
          "Starts a callback: calls `caller` (leg A), then `callee` (leg B; None: A is asked for it by DTMF), paid by "
          "`account` (with its `pin`) or a `campaign`. Returns a CallbackHandle; raises InvalidInput naming the field for "
          "bad input. on_event(callback) gets its every event on the service thread.",
          py::arg("caller"), py::arg("callee") = py::none(), py::kw_only(), py::arg("account") = py::none(),
          py::arg("campaign") = py::none(), py::arg("pin") = py::none(), py::arg("limit") = py::none(),
          py::arg("language") = py::none(), py::arg("idempotency_key") = py::none(),
          py::arg("metadata") = std::map<std::string, std::string>{}, py::arg("on_event") = py::none())
      .def("cancel",
           [](PyService& s, const std::string& id) {
             auto& service = *s;
             Status status = ok_status();
             {
               py::gil_scoped_release release;
               status = service.cancel(id);
             }
             ok_or_raise(status);
           },
           "Cancels a callback at whatever stage it is. NotFound for an unknown id, Conflict for one that has ended.")
      .def("get",
           [](PyService& s, const std::string& id) {
             auto& service = *s;
             Result<CallEvent> event = Error{};
             {
               py::gil_scoped_release release;
               event = service.get(id);
             }
             return value_or_raise(std::move(event));
           }, "The callback as its latest event left it (this process's, or the journal's). NotFound if unknown.")
      .def(
          "list",
          [](PyService& s, const std::optional<CallState>& state, std::size_t limit) {
            auto& service = *s;
            py::gil_scoped_release release;
            return service.list({.state = state, .limit = limit});
          },
          "The callbacks this process knows of, newest first (in flight, and the last 10,000 finished).",
          py::arg("state") = py::none(), py::arg("limit") = 100)
      .def("subscribe",
           [](PyService& s, const py::function& handler) {
             auto& service = *s;
             PyHandler wrapped(handler);
             py::gil_scoped_release release;
             return std::make_unique<PySubscription>(service.subscribe(std::move(wrapped)));
           }, "handler(callback) for every event of every callback, on the service thread, until the returned Subscription is closed.")
      .def("watch",
           [](PyService& s, const std::string& id, const py::function& handler) {
             auto& service = *s;
             PyHandler wrapped(handler);
             Result<Subscription> sub = Error{};
             {
               py::gil_scoped_release release;
               sub = service.watch(id, std::move(wrapped));
             }
             return std::make_unique<PySubscription>(value_or_raise(std::move(sub)));
           }, "handler(callback) for one callback: its latest state first, then each change; ends by itself after the final one.")
      .def_property_readonly("in_flight",
                             [](PyService& s) {
                               auto& service = *s;
                               py::gil_scoped_release release;
                               return service.in_flight();
                             })
      .def(
          "create_account",
          [](PyService& s, const std::string& id, const py::object& balance, const std::string& currency,
             const std::string& name, const py::object& credit_limit, const std::string& tariff, const std::string& pin,
             const std::vector<std::string>& numbers, const std::vector<std::string>& emails,
             const std::string& language) {
            AccountForm form{.id = id,
                             .name = name,
                             .currency = currency,
                             .balance = amount_text(balance, "balance"),
                             .credit_limit = amount_text(credit_limit, "credit_limit"),
                             .tariff = tariff,
                             .pin = pin,
                             .numbers = numbers,
                             .emails = emails,
                             .language = language};
            auto& service = *s;
            Result<Account> account = Error{};
            {
              py::gil_scoped_release release;
              account = service.create_account(form);
            }
            return value_or_raise(std::move(account));
          },
          "Creates a prepaid account. Amounts are Decimal (or str or int), never float.",
          py::arg("id"), py::kw_only(), py::arg("balance") = py::int_(0), py::arg("currency") = "CNY",
          py::arg("name") = "", py::arg("credit_limit") = py::int_(0), py::arg("tariff") = "", py::arg("pin") = "",
          py::arg("numbers") = std::vector<std::string>{}, py::arg("emails") = std::vector<std::string>{},
          py::arg("language") = "")
      .def("account", [](PyService& s, const std::string& id) { return value_or_raise((*s).account(id)); }, "An account by id; NotFound if there is none.")
      .def("accounts", [](PyService& s) { return value_or_raise((*s).accounts()); }, "Every account.")
      .def(
          "top_up",
          [](PyService& s, const std::string& id, const py::object& amount, const std::string& reference) {
            const std::string text = amount_text(amount, "amount");
            auto& service = *s;
            Result<LedgerEntry> entry = Error{};
            {
              py::gil_scoped_release release;
              entry = service.top_up(id, text, reference);
            }
            return value_or_raise(std::move(entry));
          },
          "Credits `amount` (a positive Decimal in the account's currency) with a ledger entry.",
          py::arg("account"), py::arg("amount"), py::arg("reference") = "")
      .def(
          "ledger", [](PyService& s, const std::string& id, std::size_t limit) { return value_or_raise((*s).ledger(id, limit)); },
          "The account's ledger, newest first.", py::arg("account"), py::arg("limit") = 100)
      .def(
          "import_rates",
          [](PyService& s, const std::string& tariff, const std::string& csv, const std::string& currency) {
            auto& service = *s;
            Result<ImportReport> report = Error{};
            {
              py::gil_scoped_release release;
              report = service.import_rates(tariff, csv, currency);
            }
            return value_or_raise(std::move(report)).rates;
          },
          "Replaces a tariff's rate deck with CSV text (prefix;description;rate...), all or nothing; the number of "
          "rates. InvalidInput names the line.",
          py::arg("tariff"), py::arg("csv"), py::arg("currency") = "CNY")
      .def("rate", [](PyService& s, const std::string& tariff, const std::string& number) {
        return value_or_raise((*s).rate(tariff, number));
      }, "The rate a number gets in a tariff now (longest prefix); NotFound (no_rate) if none.")
      .def(
          "cdrs",
          [](PyService& s, const std::optional<std::string>& callback_id, const std::optional<std::string>& account,
             const std::optional<std::string>& number, const py::object& since, const py::object& until,
             std::size_t limit) {
            CdrQuery query{.account = account.value_or(""),
                           .number = number.value_or(""),
                           .callback_id = callback_id.value_or(""),
                           .limit = limit};
            if (!since.is_none()) query.since = timestamp_of(since, "since");
            if (!until.is_none()) query.until = timestamp_of(until, "until");
            auto& service = *s;
            Result<std::vector<Cdr>> rows = Error{};
            {
              py::gil_scoped_release release;
              rows = service.cdrs(query);
            }
            return value_or_raise(std::move(rows));
          },
          "CDRs (Asterisk's columns, one a leg) by callback, account, number (src or dst) and time (aware datetimes).",
          py::kw_only(), py::arg("callback_id") = py::none(), py::arg("account") = py::none(),
          py::arg("number") = py::none(), py::arg("since") = py::none(), py::arg("until") = py::none(),
          py::arg("limit") = 0);
}
