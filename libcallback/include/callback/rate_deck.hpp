#pragma once
// Rate decks: the CSV files carriers send, parsed strictly, and held in memory as a
// compact digit trie for longest-prefix match. Every billing backend uses these.
//
// CSV (csv.hpp, RFC 4180): comma or semicolon (whichever the first line uses), double
// quotes for fields that contain either or a line break, header optional. Without a header the columns are, in order:
//   prefix; description; rate[; increment[; connection_fee[; minimum_duration[;
//   effective_from[; weekdays[; hours]]]]]]
// With a header any order of: prefix, description, rate, increment (60/60, 30/6, 1/1),
// initial_increment, subsequent_increment, connection_fee, minimum_duration,
// effective_from (YYYY-MM-DD[ HH:MM:SS], UTC), weekdays (mon-fri, sat|sun, all),
// hours (08:00-20:00; 20:00-08:00 crosses midnight). A rate of BLOCKED bars the prefix.
//
//   auto lines = parse_rate_csv(file, cny, {});      // Error: "line 17: rate: ..."
//   auto deck = RateDeck::build(std::move(*lines));  // the trie: no parsing in it
//   const RateLine* best = deck->lookup("861055556666", now);   // longest prefix
#include <callback/call.hpp>
#include <callback/export.hpp>
#include <callback/money.hpp>
#include <callback/rate.hpp>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace callback {

struct CALLBACK_EXPORT RateLine {
  std::size_t line = 0;  // in the CSV, for messages
  Rate rate;
  Timestamp effective_from{};       // applies from then on; the latest one in effect wins
  std::uint8_t weekdays = 0x7f;     // bit 0 = Monday ... bit 6 = Sunday
  std::uint16_t start_minute = 0;   // of the day, UTC
  std::uint16_t end_minute = 1440;  // exclusive; start > end crosses midnight
  bool blocked = false;

  [[nodiscard]] bool applies_at(Timestamp at) const noexcept;
  [[nodiscard]] bool always() const noexcept {
    return effective_from == Timestamp{} && weekdays == 0x7f && start_minute == 0 && end_minute == 1440;
  }
};

struct RateDeckLimits {
  std::int64_t max_rate_micros = 100'000'000;  // 100.00 a minute: anything above is a typo
  std::size_t max_rows = 5'000'000;
};

// By prefix, then the latest effective date first: the order lookups rely on.
[[nodiscard]] CALLBACK_EXPORT bool deck_order(const RateLine& a, const RateLine& b) noexcept;

// All or nothing: the first bad row is the Error ("line 17: rate: ..."); no lines then.
[[nodiscard]] CALLBACK_EXPORT Result<std::vector<RateLine>> parse_rate_csv(std::istream& in, const Currency& currency,
                                                                           RateDeckLimits limits = {});
[[nodiscard]] CALLBACK_EXPORT Result<std::vector<RateLine>> parse_rate_csv(std::string_view text,
                                                                           const Currency& currency,
                                                                           RateDeckLimits limits = {});

class CALLBACK_EXPORT RateDeck {
 public:
  // Takes the lines (any order); duplicates must have been refused by the parser.
  [[nodiscard]] static std::shared_ptr<const RateDeck> build(std::vector<RateLine> lines);

  // The longest prefix of `digits` with a line in effect at `at`; nullptr if none.
  [[nodiscard]] const RateLine* lookup(std::string_view digits, Timestamp at) const noexcept;
  // Many at once (re-rating, imports of CDRs): the walks are interleaved so the memory
  // fetches of one overlap those of the others. out[i] is lookup(numbers[i], at).
  void lookup_batch(std::span<const std::string_view> numbers, Timestamp at,
                    std::span<const RateLine*> out) const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return lines_.size(); }
  [[nodiscard]] const std::vector<RateLine>& lines() const noexcept { return lines_; }
  [[nodiscard]] std::size_t memory_bytes() const noexcept;

 private:
  static constexpr std::uint16_t unconditional = 0x8000;  // in `entries`: one line, always in force
  struct Node {
    std::uint16_t children = 0;  // bit d: a child for digit d
    std::uint16_t entries = 0;   // lines with exactly this prefix (| unconditional)
    std::uint32_t first_child = 0;
    std::uint32_t first_entry = 0;
  };
  // Level compression: the top `jump_digits_` levels of the trie as one array indexed by
  // the first digits. A slot packs, for the node at that depth, its children, where they
  // are and the best line down to it, so a walk starts with one fetch where it made six.
  // Bits 0-9 children, 10-36 first child, 37-63 best line + 1 (0 none, all ones: a line
  // on the way depends on the time: walk from the root).
  using Jump = std::uint64_t;
  static constexpr std::uint64_t jump_field = (1u << 27) - 1;
  static constexpr Jump depends_on_time = jump_field << 37;
  void build_jumps();
  // The line of this node in force at `at`, or -1; touches lines_ only when periods or
  // effective dates make it depend on the time.
  [[nodiscard]] std::int64_t entry_at(const Node& node, Timestamp at) const noexcept;
  // Where the walk for `digits` starts; sets the digit to read next and the best so far.
  [[nodiscard]] const Node* start(std::string_view digits, std::size_t& i, std::int64_t& best) const noexcept;
  // One level: notes the node's line in `best`; the child for digits[i], or nullptr.
  [[nodiscard]] const Node* step(const Node& node, std::string_view digits, std::size_t i, std::int64_t& best,
                                 Timestamp at) const noexcept;
  std::vector<Node> nodes_;
  std::vector<Jump> jumps_;
  std::size_t jump_digits_ = 0;
  std::vector<RateLine> lines_;  // sorted by prefix
};

}  // namespace callback
