#include "sqldb_pg.hpp"

namespace callback::sqldb {

namespace {

// `?` becomes $1, $2 ... (outside quoted text); the tokens become PostgreSQL's SQL.
std::string to_postgres(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '?') {
      out += '$';
      out += std::to_string(++n);
    } else if (!quoted && sql.compare(i, 5, "{lock") == 0 && sql.find('}', i) != std::string::npos) {
      const auto end = sql.find('}', i);
      const auto of = sql.substr(i + 5, end - i - 5);  // "" or " a": the table whose rows are locked
      out += " FOR UPDATE";
      if (!of.empty()) out.append(" OF").append(of);
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

class PgStatement final : public Statement {
 public:
  PgStatement(pg::Connection& conn, const std::string& sql) : conn_(conn), sql_(to_postgres(sql)) {}
  void bind(int index, std::int64_t value) override { slot(index) = std::to_string(value); }
  void bind(int index, const std::string& value) override { slot(index) = value; }
  void bind(int index) override { slot(index).reset(); }
  bool executeStep() override {
    if (!rows_) run();
    return ++row_ < rows_->size();
  }
  Column getColumn(int index) override {
    if (!rows_ || row_ < 0 || row_ >= rows_->size()) throw pg::Failure("no row to read", "", false);
    if (rows_->null(row_, index)) return Column::null();
    const auto text = rows_->view(row_, index);
    return Column::text(text.data(), text.size());
  }
  int exec() override {
    run();
    return static_cast<int>(rows_->affected());
  }
  void send() override { conn_.send(sql_, params()); }
  void reset() noexcept override {
    rows_.reset();
    row_ = -1;
    params_.clear();
  }

 private:
  std::optional<std::string>& slot(int index) {
    if (params_.size() < static_cast<std::size_t>(index)) params_.resize(static_cast<std::size_t>(index));
    return params_[static_cast<std::size_t>(index) - 1];
  }
  std::vector<pg::Param> params() const {
    std::vector<pg::Param> params;
    params.reserve(params_.size());
    for (const auto& p : params_) params.push_back(p ? pg::Param(*p) : pg::Param(std::nullopt));
    return params;
  }
  void run() {
    rows_ = conn_.exec(sql_, params());
    row_ = -1;
  }

  pg::Connection& conn_;
  std::string sql_;
  std::vector<std::optional<std::string>> params_;
  std::optional<pg::Rows> rows_;
  int row_ = -1;
};

// COPY's text format: backslash, tab, newline and carriage return escaped; NULL is \N.
void copy_value(std::string& out, const std::optional<std::string>& value) {
  if (!value) {
    out += "\\N";
    return;
  }
  for (const char c : *value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

}  // namespace

Statement& PgDatabase::prepared(const char* sql) {
  auto& slot = cache_[sql];
  if (!slot) {
    slot = std::make_unique<PgStatement>(*conn_, sql);
  } else {
    slot->reset();
  }
  in_use_.push_back(slot.get());
  return *slot;
}

std::unique_ptr<Statement> PgDatabase::statement(const std::string& sql) {
  return std::make_unique<PgStatement>(*conn_, sql);
}

void PgDatabase::exec(const std::string& sql) { conn_->script(sql); }

void PgDatabase::reset_statements() noexcept {
  for (auto* statement : in_use_) statement->reset();
  in_use_.clear();
}

void PgDatabase::ensure_connected() {
  if (conn_->alive() || !owned_) return;
  // The server restarted or the network went: a new connection, whose statements are
  // compiled again.
  reset_statements();
  cache_.clear();
  owned_ = std::make_unique<pg::Connection>(conninfo_);
  conn_ = owned_.get();
}

void PgDatabase::bulk_insert(const std::string& table, const std::vector<std::string>& columns, std::size_t rows,
                             const std::function<void(std::size_t, Row&)>& fill) {
  std::string sql = "COPY " + table + " (";
  for (std::size_t i = 0; i < columns.size(); ++i) sql += (i ? ", " : "") + columns[i];
  sql += ") FROM STDIN";
  conn_->flush();  // a BEGIN sent without waiting
  PGconn* raw = conn_->raw();
  PGresult* started = PQexec(raw, sql.c_str());
  const bool copying = PQresultStatus(started) == PGRES_COPY_IN;
  std::string why = copying ? "" : PQresultErrorMessage(started);
  PQclear(started);
  if (!copying) throw pg::Failure("cannot COPY into " + table + ": " + why, "", PQstatus(raw) != CONNECTION_OK);
  std::string buffer;
  Row row(columns.size());
  auto send = [&] {
    if (PQputCopyData(raw, buffer.data(), static_cast<int>(buffer.size())) != 1) {
      throw pg::Failure(std::string("COPY failed: ") + PQerrorMessage(raw), "", PQstatus(raw) != CONNECTION_OK);
    }
    buffer.clear();
  };
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& value : row) value.reset();
    fill(r, row);
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c) buffer += '\t';
      copy_value(buffer, row[c]);
    }
    buffer += '\n';
    if (buffer.size() >= (1 << 20)) send();
  }
  if (!buffer.empty()) send();
  if (PQputCopyEnd(raw, nullptr) != 1) throw pg::Failure(std::string("COPY failed: ") + PQerrorMessage(raw), "", true);
  PGresult* result = PQgetResult(raw);
  const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
  std::string message = ok ? "" : PQresultErrorMessage(result);
  std::string state = ok || PQresultErrorField(result, PG_DIAG_SQLSTATE) == nullptr
                          ? ""
                          : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  PQclear(result);
  while ((result = PQgetResult(raw)) != nullptr) PQclear(result);
  if (!ok) throw pg::Failure("COPY into " + table + " failed: " + message, state, PQstatus(raw) != CONNECTION_OK);
}

}  // namespace callback::sqldb
