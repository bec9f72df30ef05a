#pragma once
// Runs a command line through /bin/sh and captures its exit code, stdout and stderr.
// `timeout` guards every run so a hang fails the test instead of stalling the suite.
#include "temp_dir.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace callback::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline CommandResult run_command(const std::string& command, int timeout_seconds = 30) {
  TempDir dir;
  const auto err_file = dir / "stderr";
  const std::string line = "timeout " + std::to_string(timeout_seconds) + " " + command + " 2>" +
                           shell_quote(err_file.string()) + " </dev/null";
  CommandResult result;
  FILE* pipe = popen(line.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream err(err_file);
  std::ostringstream text;
  text << err.rdbuf();
  result.err = text.str();
  return result;
}

}  // namespace callback::test
