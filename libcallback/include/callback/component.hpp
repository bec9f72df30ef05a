#pragma once
// Component: the base of everything a plugin creates (stores, billing, engines, triggers,
// front ends). It lets the loader hand objects of any kind through one factory and then
// check the kind with dynamic_cast; the type information lives in libcallback, so the
// check works across shared libraries.
#include <callback/export.hpp>

namespace callback {

class CALLBACK_EXPORT Component {
 public:
  virtual ~Component();
  Component() = default;
  Component(const Component&) = delete;
  Component& operator=(const Component&) = delete;
};

}  // namespace callback
