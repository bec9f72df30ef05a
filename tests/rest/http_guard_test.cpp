// The HTTP guard's pure parts, without sockets: the percent-decoder, the query decoder and
// the request-head checker (rest/http_guard.hpp).
#include "http_guard.hpp"

#include <gtest/gtest.h>

namespace callback::rest {
namespace {

using Pistache::Http::Code;

const BodyLimit limit_2048 = [](std::string_view, std::string_view path) -> std::size_t {
  return path == "/v1/rates/gold" ? 1'000'000 : 2048;
};

Rejection rejected(std::string_view bytes) {
  auto check = check_request_head(bytes, limit_2048);
  if (auto* r = std::get_if<Rejection>(&check)) return *r;
  ADD_FAILURE() << "not rejected: " << bytes;
  return {};
}

TEST(PercentDecode, DecodesEscapesAndPlusOnlyInFormText) {
  EXPECT_EQ(percent_decode("2026-11-30T09%3A00%3A00Z", true), "2026-11-30T09:00:00Z");
  EXPECT_EQ(percent_decode("%2B1001", true), "+1001");
  EXPECT_EQ(percent_decode("%2b%7E%41", true), "+~A");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("100%25", true), "100%");
  EXPECT_EQ(percent_decode("", true), "");
  EXPECT_EQ(percent_decode("%G1", true), std::nullopt);
  EXPECT_EQ(percent_decode("%4", true), std::nullopt);
  EXPECT_EQ(percent_decode("abc%", true), std::nullopt);
  EXPECT_EQ(percent_decode("%%41", true), std::nullopt);
}

TEST(DecodeQuery, SplitsDecodesAndNamesTheBadParameter) {
  auto q = decode_query("tariff=gold&lookup=%2B1001&&flag&x=a%3Db%26c");
  ASSERT_TRUE(q) << q.error().describe();
  const QueryParameters want{{"tariff", "gold"}, {"lookup", "+1001"}, {"flag", ""}, {"x", "a=b&c"}};
  EXPECT_EQ(*q, want);
  auto bad = decode_query("limit=5&since=09%G1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "invalid_parameter");
  EXPECT_EQ(bad.error().field, "since");
  EXPECT_EQ(decode_query("lookup=1%4").error().field, "lookup");
  EXPECT_EQ(decode_query("na%2me=1").error().field, "na%2me");  // a bad name is named as sent
  EXPECT_EQ(decode_query("state=a%0Ab").error().field, "state");  // no control characters
  EXPECT_EQ(decode_query("state=a%00").error().field, "state");
}

TEST(CheckRequestHead, AWholeHeadIsParsed) {
  auto check = check_request_head(
      "\r\nPOST /v1/callbacks?lookup=%2B1 HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"a\": 1}",
      limit_2048);
  ASSERT_TRUE(std::holds_alternative<RequestHead>(check));
  const auto& head = std::get<RequestHead>(check);
  EXPECT_EQ(head.preamble, 2u);
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/v1/callbacks?lookup=%2B1");
  EXPECT_EQ(head.query, (QueryParameters{{"lookup", "+1"}}));
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_TRUE(head.close);
  EXPECT_EQ(head.size, std::string_view("\r\nPOST /v1/callbacks?lookup=%2B1 HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                        "12\r\nConnection: close\r\n\r\n")
                           .size());
  // HTTP/1.0 closes unless it asks to keep the connection.
  EXPECT_TRUE(std::get<RequestHead>(check_request_head("GET / HTTP/1.0\r\n\r\n", limit_2048)).close);
  EXPECT_FALSE(std::get<RequestHead>(check_request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", limit_2048)).close);
  // The route's limit: a deck import may be bigger.
  EXPECT_EQ(std::get<RequestHead>(check_request_head("POST /v1/rates/gold HTTP/1.1\r\nContent-Length: 500000\r\n\r\n",
                                                     limit_2048))
                .content_length,
            500000u);
}

TEST(CheckRequestHead, AHeadStillArrivingIsIncomplete) {
  for (std::string_view part : {"", "GE", "GET / HTTP/1.1", "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\nHost: x\r\n",
                                "GET / HTTP/1.1\r\nHost: x\r\n\r"}) {
    EXPECT_TRUE(std::holds_alternative<HeadIncomplete>(check_request_head(part, limit_2048))) << part;
  }
}

TEST(CheckRequestHead, EachDefectIsRefusedWithItsStatusAndField) {
  struct Case {
    std::string_view bytes;
    Code status;
    std::string code, field;
  };
  const std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n", Code::Bad_Request, "invalid_content_length", "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n", Code::Bad_Request, "invalid_content_length",
       "Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n", Code::Request_Entity_Too_Large, "body_too_large",
       "body"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n", Code::Bad_Request, "invalid_content_length",
       "Content-Length"},
      // 413 as soon as the length is read, before the head ends.
      {"POST /v1/callbacks HTTP/1.1\r\nContent-Length: 2049\r\n", Code::Request_Entity_Too_Large, "body_too_large",
       "body"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", Code::Length_Required, "length_required",
       "Transfer-Encoding"},
      {"GET /\r\n", Code::HTTP_Version_Not_Supported, "unsupported_version", "version"},
      {"GET / HTTP/1.2\r\n", Code::HTTP_Version_Not_Supported, "unsupported_version", "version"},
      {"GET / HTTP/1.1 x\r\n", Code::Bad_Request, "invalid_request_line", "version"},
      {"GET / HTTP/1.1\n", Code::Bad_Request, "invalid_line_ending", "request_line"},
      {"GET / HTTP/1.1\rX", Code::Bad_Request, "invalid_line_ending", "request_line"},
      {"GET / HTTP/1.1\r\nHost: x\n", Code::Bad_Request, "invalid_line_ending", "headers"},
      {"GET / HTTP/1.1\r\nHost x\r\n", Code::Bad_Request, "invalid_header", "headers"},
      {"GET / HTTP/1.1\r\nHost : x\r\n", Code::Bad_Request, "invalid_header", "headers"},
      {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n", Code::Bad_Request, "invalid_header", "headers"},
      {std::string_view("GET / HTTP/1.1\r\nA: b\0c\r\n", 24), Code::Bad_Request, "invalid_header", "A"},
      // A value Pistache cannot read in a header it parses (found by fuzz_query), named.
      {"POST / HTTP/1.1\r\nContent-Type: applicaength: 19\r\n", Code::Bad_Request, "invalid_header", "Content-Type"},
      {"POST / HTTP/1.1\r\ncontent-type: json\r\n", Code::Bad_Request, "invalid_header", "content-type"},
      {"GET / HTTP/1.1\r\nHost: example.com:13\t\t\r\n", Code::Bad_Request, "invalid_header", "Host"},
      {"GET x HTTP/1.1\r\n", Code::Bad_Request, "invalid_target", "target"},
      {"GET  / HTTP/1.1\r\n", Code::Bad_Request, "invalid_target", "target"},
      {"hello\r\n", Code::Bad_Request, "invalid_request_line", "request_line"},
      {"\x16\x03\x01", Code::Bad_Request, "invalid_request_line", "request_line"},  // TLS, at once
      {"BREW /pot HTTP/1.1\r\n", Code::Not_Implemented, "unknown_method", "method"},
      {"GET /v1/callbacks?since=%G1 HTTP/1.1\r\n", Code::Bad_Request, "invalid_parameter", "since"},
  };
  for (const auto& c : cases) {
    const auto r = rejected(c.bytes);
    EXPECT_EQ(r.status, c.status) << c.bytes;
    EXPECT_EQ(r.error.code, c.code) << c.bytes;
    EXPECT_EQ(r.error.field, c.field) << c.bytes;
    EXPECT_FALSE(r.error.message.empty());
  }
}

TEST(CheckRequestHead, AnOverlongHeadIsRefused) {
  EXPECT_EQ(rejected("GET /" + std::string(max_request_head, 'a')).status, Code::RequestURI_Too_Long);
  EXPECT_EQ(rejected("GET / HTTP/1.1\r\nX: " + std::string(max_request_head, 'a')).status,
            Code::Request_Header_Fields_Too_Large);
}

}  // namespace
}  // namespace callback::rest
