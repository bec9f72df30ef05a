#pragma once
// A leg-B CDR as the seed's dialplan leaves one for a busy B (every column filled), for the
// store tests.
#include <callback/cdr.hpp>

#include <string>

namespace callback::test {

inline Cdr sample_cdr(std::string callback_id, std::string dst, Timestamp at) {
  Cdr cdr;
  cdr.calldate = at;
  cdr.clid = "\"Alice\" <861055556666>";
  cdr.src = "861055556666";
  cdr.dst = std::move(dst);
  cdr.dcontext = "callback";
  cdr.channel = "Local/1001@phones-00000001;1";
  cdr.dstchannel = "Local/3001@phones-00000002;1";
  cdr.lastapp = "Dial";
  cdr.lastdata = "Local/3001@phones,45,gL(300000:20000:20000)";
  cdr.duration = 12;
  cdr.billsec = 0;
  cdr.disposition = Disposition::busy;
  cdr.accountcode = "123";
  cdr.uniqueid = "1764150000.17";
  cdr.userfield = "Hangupcause:17";
  cdr.callback_id = std::move(callback_id);
  cdr.leg = LegRole::b;
  cdr.hangup_cause = HangupCause{17};
  return cdr;
}

}  // namespace callback::test
