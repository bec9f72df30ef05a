#include "sqldb.hpp"

#include <callback/timestamp.hpp>

namespace callback::sqldb {

LedgerEntry post_ledger(Database& db, const LedgerEntry& entry, const Currency& currency, Posting how) {
  LedgerEntry stored = entry;
  const std::string kind(to_string(entry.kind));
  if (!entry.reference.empty() && !how.first) {
    Statement& first = db.prepared(
        "SELECT id, amount_micros, note, at, balance_after_micros FROM ledger WHERE account_id = ? AND kind = ? "
        "AND reference = ? ORDER BY id LIMIT 1");
    first.bindNoCopy(1, entry.account_id);
    first.bindNoCopy(2, kind);
    first.bindNoCopy(3, entry.reference);
    if (first.executeStep()) {
      const auto amount = first.getColumn(1).getInt64();
      if (amount != entry.amount.micros()) {
        throw Exception(Error{"reference_reused", "reference \"" + entry.reference + "\" was posted to " +
                                                      entry.account_id + " already, for " +
                                                      Money::from_micros(amount, currency).format(),
                              "reference"}
                            .as(ErrorKind::conflict));
      }
      stored.id = first.getColumn(0).getInt64();
      stored.note = first.getColumn(2).getString();
      stored.at = parse_timestamp(first.getColumn(3).getString()).value_or(Timestamp{});
      stored.balance_after = Money::from_micros(first.getColumn(4).getInt64(), currency);
      first.reset();
      return stored;
    }
    first.reset();
  }
  if (stored.at == Timestamp{}) stored.at = std::chrono::system_clock::now();
  if (how.unread) {
    Statement& charge =
        db.prepared("UPDATE account SET balance_micros = balance_micros + ?, reserved_micros = reserved_micros - ? "
                    "WHERE id = ?");
    charge.bind(1, entry.amount.micros());
    charge.bind(2, how.release_reserved);
    charge.bindNoCopy(3, entry.account_id);
    charge.send();
    charge.reset();
    Statement& insert = db.prepared(
        "INSERT INTO ledger (account_id, amount_micros, kind, reference, note, at, balance_after_micros) "
        "SELECT id, ?, ?, ?, ?, ?, balance_micros FROM account WHERE id = ?");
    insert.bind(1, entry.amount.micros());
    insert.bindNoCopy(2, kind);
    insert.bindNoCopy(3, entry.reference);
    insert.bindNoCopy(4, entry.note);
    insert.bind(5, format_timestamp(stored.at));
    insert.bindNoCopy(6, entry.account_id);
    insert.send();
    insert.reset();
    return stored;
  }
  Statement& update = db.prepared(
      "UPDATE account SET balance_micros = balance_micros + ?, reserved_micros = reserved_micros - ? WHERE id = ? "
      "RETURNING balance_micros");
  update.bind(1, entry.amount.micros());
  update.bind(2, how.release_reserved);
  update.bindNoCopy(3, entry.account_id);
  if (!update.executeStep()) {
    throw Exception(Error{"unknown_account", "no account " + entry.account_id, "account_id"}.as(ErrorKind::not_found));
  }
  stored.balance_after = Money::from_micros(update.getColumn(0).getInt64(), currency);
  update.reset();
  Statement& insert = db.prepared(
      "INSERT INTO ledger (account_id, amount_micros, kind, reference, note, at, balance_after_micros) "
      "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id");
  insert.bindNoCopy(1, entry.account_id);
  insert.bind(2, entry.amount.micros());
  insert.bindNoCopy(3, kind);
  insert.bindNoCopy(4, entry.reference);
  insert.bindNoCopy(5, entry.note);
  insert.bind(6, format_timestamp(stored.at));
  insert.bind(7, stored.balance_after.micros());
  if (!insert.executeStep()) throw Exception(Error{"store_failed", "the ledger gave no id", {}});
  stored.id = insert.getColumn(0).getInt64();
  insert.reset();
  return stored;
}

void count_caller(Database& db, const Cdr& cdr) {
  if (cdr.leg == LegRole::a) {
    const bool answered = cdr.disposition == Disposition::answered;
    const auto at = format_timestamp(cdr.calldate);
    Statement& attempt = db.prepared(
        "INSERT INTO caller_stats AS s (number, attempts, answered, failures, first_call, last_call) "
        "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET attempts = s.attempts + 1, "
        "answered = s.answered + excluded.answered, failures = s.failures + excluded.failures, "
        "first_call = CASE WHEN excluded.first_call < s.first_call THEN excluded.first_call ELSE s.first_call END, "
        "last_call = CASE WHEN excluded.last_call > s.last_call THEN excluded.last_call ELSE s.last_call END");
    attempt.bind(1, cdr.dst);
    attempt.bind(2, answered ? 1 : 0);
    attempt.bind(3, answered ? 0 : 1);
    attempt.bind(4, at);
    attempt.bind(5, at);
    attempt.exec();
    attempt.reset();
  } else if (cdr.billsec > 0) {
    Statement& talk = db.prepared("UPDATE caller_stats SET talk_seconds = talk_seconds + ? WHERE number = ?");
    talk.bind(1, cdr.billsec);
    talk.bind(2, cdr.src);
    talk.exec();
    talk.reset();
  }
}

std::vector<CallerStats> read_caller_stats(Database& db, const std::string& number, std::size_t limit) {
  Statement& select = number.empty()
                          ? db.prepared("SELECT number, attempts, answered, failures, talk_seconds, first_call, last_call "
                                        "FROM caller_stats ORDER BY attempts DESC, number LIMIT ?")
                          : db.prepared("SELECT number, attempts, answered, failures, talk_seconds, first_call, last_call "
                                        "FROM caller_stats WHERE number = ? LIMIT ?");
  int i = 1;
  if (!number.empty()) select.bind(i++, number);
  // A LIMIT neither refuses: SQLite's -1 and PostgreSQL's NULL both mean none, so a large one.
  select.bind(i, limit == 0 ? std::int64_t{1} << 62 : static_cast<std::int64_t>(limit));
  std::vector<CallerStats> out;
  while (select.executeStep()) {
    CallerStats s;
    s.number = select.getColumn(0).getString();
    s.attempts = select.getColumn(1).getInt64();
    s.answered = select.getColumn(2).getInt64();
    s.failures = select.getColumn(3).getInt64();
    s.talk_seconds = select.getColumn(4).getInt64();
    if (!select.getColumn(5).isNull()) s.first_call = parse_timestamp(select.getColumn(5).getString());
    if (!select.getColumn(6).isNull()) s.last_call = parse_timestamp(select.getColumn(6).getString());
    out.push_back(std::move(s));
  }
  select.reset();
  return out;
}

}  // namespace callback::sqldb
