#pragma once
// A database of the test's own in the tests' PostgreSQL (tests/support/postgres.sh, which
// ctest's "postgres" fixture starts), dropped when the test ends. CALLBACK_TEST_PG_STATE
// names the script's state folder.
#include "pg.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace callback::test {

class PostgresDatabase {
 public:
  PostgresDatabase() {
    const char* state = std::getenv("CALLBACK_TEST_PG_STATE");
    if (state == nullptr || *state == '\0') {
      throw std::runtime_error(
          "CALLBACK_TEST_PG_STATE is not set: run this test through ctest (its postgres fixture starts the server), "
          "or start one with tests/support/postgres.sh start DIR and set CALLBACK_TEST_PG_STATE=DIR");
    }
    std::ifstream file(std::string(state) + "/conninfo");
    std::getline(file, server_);
    if (server_.empty()) throw std::runtime_error(std::string("no PostgreSQL conninfo in ") + state);
    std::random_device random;
    name_ = "t_" + std::to_string(getpid()) + "_" + std::to_string(random());
    pg::Connection(server_ + " dbname=postgres").script("CREATE DATABASE " + name_);
  }
  ~PostgresDatabase() {
    try {
      back();
      pg::Connection(server_ + " dbname=postgres").script("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
      // the server went (postgres.sh stop removes everything anyway)
    }
  }
  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;

  [[nodiscard]] std::string conninfo() const { return server_ + " dbname=" + name_; }

  // An outage of this database alone: new connections are refused and the open ones cut,
  // as when its server goes away; back() ends it.
  void cut() {
    pg::Connection admin(server_ + " dbname=postgres");
    admin.script("ALTER DATABASE " + name_ + " ALLOW_CONNECTIONS false");
    admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", {name_});
  }
  void back() { pg::Connection(server_ + " dbname=postgres").script("ALTER DATABASE " + name_ + " ALLOW_CONNECTIONS true"); }
  [[nodiscard]] const std::string& server() const { return server_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string server_;
  std::string name_;
};

}  // namespace callback::test
