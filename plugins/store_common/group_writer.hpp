#pragma once
// The writer thread of a store's append_async and CallJournal::write_async: what callers
// queue while a transaction runs is written together in the next one (group commit), in
// the order given, so their event loops never wait for the database. If the whole group
// fails, each batch is written alone, so one bad batch does not hold back the others and
// each caller learns its own outcome. Shared by the SQLite and PostgreSQL stores.
#include <callback/store.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

namespace callback::store_common {

class GroupWriter {
 public:
  // Writes CDRs (assigning their ids) and journal entries in one transaction.
  using Write = std::function<Status(std::span<Cdr>, std::span<const JournalEntry>)>;
  explicit GroupWriter(Write write) : write_(std::move(write)) {}
  GroupWriter(const GroupWriter&) = delete;
  GroupWriter& operator=(const GroupWriter&) = delete;
  // Writes what is still queued, then stops the thread.
  ~GroupWriter() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void submit(std::vector<JournalEntry> entries, std::vector<Cdr> cdrs, CdrStore::AppendDone done) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({std::move(entries), std::move(cdrs), std::move(done)});
      if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });  // started on first use
    }
    changed_.notify_all();
  }

  // Waits until everything submitted so far has been written (or has failed).
  void flush() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return queue_.empty() && !writing_; });
  }

 private:
  struct Batch {
    std::vector<JournalEntry> entries;
    std::vector<Cdr> cdrs;
    CdrStore::AppendDone done;
  };

  void loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      std::vector<Batch> batches(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
      writing_ = true;
      lock.unlock();
      bool together = false;
      if (batches.size() > 1) {
        std::vector<Cdr> all;
        std::vector<JournalEntry> journal;
        for (auto& b : batches) {
          all.insert(all.end(), b.cdrs.begin(), b.cdrs.end());
          journal.insert(journal.end(), b.entries.begin(), b.entries.end());
        }
        together = write_(std::span<Cdr>(all), journal).ok();
        if (together) {  // the ids the store gave them
          std::size_t i = 0;
          for (auto& b : batches) {
            for (auto& cdr : b.cdrs) cdr.id = all[i++].id;
          }
        }
      }
      for (auto& b : batches) {
        Status stored = together ? ok_status() : write_(std::span<Cdr>(b.cdrs), b.entries);
        try {
          b.done(std::move(stored), std::move(b.cdrs));
        } catch (...) {
          // a caller's continuation must not stop the writer
        }
      }
      lock.lock();
      writing_ = false;
      changed_.notify_all();
    }
  }

  Write write_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> queue_;
  bool writing_ = false;  // the thread holds batches it has not answered yet
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace callback::store_common
