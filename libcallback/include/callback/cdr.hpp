#pragma once
// Cdr: one call detail record per leg of every attempt, answered or not. The first
// sixteen columns are exactly those of Asterisk's cdr table (cdr_mysql/cdr_odbc, as in
// the seed), so existing reports and tools keep working; the rest are ours.
//
//   Cdr cdr;
//   cdr.src = "861055556666"; cdr.dst = "19281112222"; cdr.disposition = Disposition::busy;
//   cdr.userfield = "Hangupcause:17"; cdr.callback_id = call.id(); cdr.leg = LegRole::b;
//   store.cdrs().append(cdr);
#include <callback/call.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callback {

// Asterisk's dispositions, spelled as Asterisk spells them in the cdr table.
enum class Disposition { answered, no_answer, busy, failed, congestion };
[[nodiscard]] CALLBACK_EXPORT std::string_view to_string(Disposition d) noexcept;  // "NO ANSWER"
[[nodiscard]] CALLBACK_EXPORT std::optional<Disposition> disposition_from_string(std::string_view s) noexcept;
// What Asterisk would record for a leg that ended with this cause.
[[nodiscard]] CALLBACK_EXPORT Disposition disposition_for(HangupCause cause, bool answered) noexcept;

struct Cdr {
  // Asterisk's columns.
  Timestamp calldate{};
  std::string clid;         // "\"Alice\" <861055556666>"
  std::string src;          // caller id number
  std::string dst;          // destination number
  std::string dcontext;
  std::string channel;
  std::string dstchannel;
  std::string lastapp;
  std::string lastdata;
  std::int64_t duration = 0;  // seconds, start to end
  std::int64_t billsec = 0;   // seconds, answer to end
  Disposition disposition = Disposition::no_answer;
  std::int64_t amaflags = 3;  // 3 = DOCUMENTATION, Asterisk's default
  std::string accountcode;
  std::string uniqueid;
  std::string userfield;  // "Hangupcause:17", as the seed's dialplan writes it
  // Ours.
  std::string callback_id;
  LegRole leg = LegRole::a;
  std::optional<Money> cost;  // empty: not billed (unanswered, free campaign)
  HangupCause hangup_cause;
  std::int64_t id = 0;  // assigned by the store
};

// Per caller number (the seed's monitor program), counted by the store as CDRs are
// appended: each leg-A record is an attempt of its dst (the caller, whom leg A rings),
// answered or not; each answered leg-B record adds its billsec to its src's talk time.
struct CallerStats {
  std::string number;
  std::int64_t attempts = 0;
  std::int64_t answered = 0;
  std::int64_t failures = 0;
  std::int64_t talk_seconds = 0;
  std::optional<Timestamp> first_call, last_call;
};

}  // namespace callback
