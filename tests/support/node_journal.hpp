#pragma once
// A journal as the engines of one node among several see it (tests): shared, claimed as
// node `node`, holding nothing. The engines ask it only shared(), node() and (AMI)
// claim_inbound().
#include <callback/store.hpp>

#include <string>
#include <utility>

namespace callback::test {

struct NodeJournal : CallJournal {
  std::string node_id;
  explicit NodeJournal(std::string node = "n1") : node_id(std::move(node)) {}
  void write_async(std::vector<JournalEntry>, std::vector<Cdr> cdrs, CdrStore::AppendDone done) override {
    done(ok_status(), std::move(cdrs));
  }
  Result<std::vector<JournalEntry>> open() override { return std::vector<JournalEntry>{}; }
  Result<std::vector<JournalEntry>> recent(std::size_t) override { return std::vector<JournalEntry>{}; }
  Result<std::optional<JournalEntry>> entry(const std::string&) override { return std::optional<JournalEntry>{}; }
  using CallJournal::claim;
  Status claim(const NodeClaim&) override { return ok_status(); }
  [[nodiscard]] bool shared() const override { return true; }
  [[nodiscard]] std::string node() const override { return node_id; }
};

}  // namespace callback::test
