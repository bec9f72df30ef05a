#pragma once
// Symbols are hidden by default (-fvisibility=hidden); the public API is marked with
// CALLBACK_EXPORT. Interfaces are exported too, so their type information is shared
// between libcallback, plugins and applications (dynamic_cast and exceptions work across).
#define CALLBACK_EXPORT __attribute__((visibility("default")))
