// HttpRouteTable: the routes plugins add to callbackd, and the form decoding they share.
#include <callback/http.hpp>

#include <gtest/gtest.h>

using namespace callback;

namespace {

HttpHandler answering(std::string body) {
  return [body](const HttpRequest&, HttpRespond respond) { respond({.body = body}); };
}
std::string call(const HttpRouteTable::Match& match) {
  std::string got;
  match.handler(HttpRequest{}, [&](HttpResponse r) { got = r.body; });
  return got;
}

TEST(HttpRouteTable, ExactRoutesThenTheLongestPrefixAndTheMethodsAPathHas) {
  HttpRouteTable routes;
  EXPECT_TRUE(routes.empty());
  ASSERT_TRUE(routes.add("POST", "/hooks/sms/twilio", answering("twilio")));
  ASSERT_TRUE(routes.add("POST", "/hooks/", answering("hooks"), /*prefix=*/true));
  ASSERT_TRUE(routes.add("GET", "/", answering("page"), /*prefix=*/true));
  ASSERT_TRUE(routes.add("GET", "/assets/", answering("assets"), /*prefix=*/true));

  EXPECT_EQ(call(routes.find("POST", "/hooks/sms/twilio")), "twilio");
  EXPECT_EQ(call(routes.find("POST", "/hooks/email")), "hooks");
  EXPECT_EQ(call(routes.find("GET", "/assets/app.js")), "assets");
  EXPECT_EQ(call(routes.find("GET", "/index.html")), "page");
  auto wrong_method = routes.find("GET", "/hooks/sms/twilio");
  EXPECT_FALSE(wrong_method.handler);
  EXPECT_EQ(wrong_method.allowed, "POST") << "a 405 says what the path takes";
  auto nothing = routes.find("POST", "/v1/callbacks");
  EXPECT_FALSE(nothing.handler);
  EXPECT_EQ(nothing.allowed, "") << "callbackd's own routes are not in the table, and \"/\" does not cover them";
  EXPECT_FALSE(routes.find("GET", "/healthz").handler);
  EXPECT_FALSE(routes.find("GET", "/metrics").handler);
  EXPECT_FALSE(routes.empty());
}

TEST(HttpRouteTable, RefusesTakenReservedAndMalformedRoutes) {
  HttpRouteTable routes;
  ASSERT_TRUE(routes.add("POST", "/hooks/sms", answering("a")));
  const std::tuple<std::string, std::string, bool, std::string> bad[] = {
      {"POST", "/hooks/sms", false, "route_taken"},
      {"POST", "/v1/callbacks", false, "route_reserved"},
      {"GET", "/healthz", false, "route_reserved"},
      {"GET", "/metrics", false, "route_reserved"},
      {"GET", "/v1/public/", true, "route_reserved"},
      {"PATCH", "/hooks/x", false, "invalid_route"},
      {"POST", "hooks/x", false, "invalid_route"},
      {"POST", "/hooks/x?y=1", false, "invalid_route"},
      {"POST", "/hooks/x y", false, "invalid_route"},
  };
  for (const auto& [method, path, prefix, code] : bad) {
    auto added = routes.add(method, path, answering("b"), prefix);
    ASSERT_FALSE(added) << method << " " << path;
    EXPECT_EQ(added.error().code, code) << method << " " << path;
  }
  EXPECT_FALSE(routes.add("POST", "/hooks/y", nullptr));
  EXPECT_TRUE(routes.add("GET", "/hooks/sms", answering("c"))) << "another method of a taken path";
  EXPECT_EQ(routes.find("PUT", "/hooks/sms").allowed, "POST, GET");
}

TEST(DecodeForm, DecodesATwilioBodyAndSaysWhereItIsMalformed) {
  auto fields = decode_form("From=%2B8613800138000&Body=alice+s3cret%2313800138000&Empty=&Flag");
  ASSERT_TRUE(fields);
  const FormFields want{{"From", "+8613800138000"}, {"Body", "alice s3cret#13800138000"}, {"Empty", ""}, {"Flag", ""}};
  EXPECT_EQ(*fields, want);
  auto bad = decode_form("From=%2B86&Body=%E4%B8");
  ASSERT_TRUE(bad) << "a cut UTF-8 sequence is bytes, not a bad escape";
  auto escape = decode_form("From=1&Body=50%");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().field, "Body");
  auto control = decode_form("Body=a%0Db");
  ASSERT_FALSE(control);
  EXPECT_EQ(control.error().code, "invalid_parameter");
}

TEST(HttpRequest, FindsAHeaderWhateverItsCase) {
  HttpRequest request{.headers = {{"X-Twilio-Signature", "abc"}, {"content-type", "text/plain"}}};
  EXPECT_EQ(request.header("x-twilio-signature"), "abc");
  EXPECT_EQ(request.header("Content-Type"), "text/plain");
  EXPECT_EQ(request.header("Host"), std::nullopt);
}

}  // namespace
