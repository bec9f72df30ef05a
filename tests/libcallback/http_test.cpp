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
      {"GET", "/v1", false, "route_reserved"},
      {"GET", "/v1/triggers", true, "route_reserved"},
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
  // The web page's public API is a plugin's.
  ASSERT_TRUE(routes.add("POST", "/v1/public/callbacks", answering("page")));
  EXPECT_EQ(call(routes.find("POST", "/v1/public/callbacks")), "page");
}

// Errors become statuses by their kind, never by their code: a code of its own still
// answers as its kind says, and a client reads the kind back from the status.
TEST(ErrorResponse, TheKindGivesTheStatusAndTheBodyNamesTheError) {
  const std::pair<ErrorKind, int> kinds[] = {
      {ErrorKind::invalid, 400},          {ErrorKind::unauthorized, 401},       {ErrorKind::payment_required, 402},
      {ErrorKind::forbidden, 403},        {ErrorKind::not_found, 404},          {ErrorKind::method_not_allowed, 405},
      {ErrorKind::conflict, 409},         {ErrorKind::too_large, 413},          {ErrorKind::unsupported_media, 415},
      {ErrorKind::rate_limited, 429},     {ErrorKind::internal, 500},           {ErrorKind::unavailable, 503},
  };
  for (const auto& [kind, status] : kinds) {
    EXPECT_EQ(http_status(kind), status);
    EXPECT_EQ(error_kind_for_status(status), kind) << status;
  }
  EXPECT_EQ(error_kind_for_status(418), ErrorKind::invalid);
  EXPECT_EQ(error_kind_for_status(502), ErrorKind::internal);

  const Error denied = Error{"denied.premium_range", "premium numbers are barred", "callee", "deny_prefix +1900"}.as(
      ErrorKind::forbidden);
  const HttpResponse r = error_response(denied);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"error":{"code":"denied.premium_range","message":"premium numbers are barred",)"
                    R"("field":"callee","rule":"deny_prefix +1900"}})");
  EXPECT_EQ(error_response(Error{"denied.anything", "no", {}}).status, 400) << "the code's prefix means nothing";
  // Located elsewhere, an error keeps its kind.
  EXPECT_EQ(denied.at("calls[3]").kind, ErrorKind::forbidden);
  EXPECT_EQ(denied.within("request").kind, ErrorKind::forbidden);
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
