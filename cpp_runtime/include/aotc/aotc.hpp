// aotc runtime: C++17 API. Header-only, implemented inline on top of the C
// API (aotc.h), so no C++ type crosses the libaotc boundary and the host may be
// built with another compiler or standard library than the runtime.
//
//   auto package = aotc::Package::open("model.pt2");
//   if (!package.ok()) { /* package.status().message() says why */ }
//   auto model = aotc::Model::load(*package, {/*name=*/"", /*device=*/"cpu"});
//   auto x = aotc::TensorView::of(data.data(), {8, 64});
//   auto outputs = model->run({*x});
//   const float* y = (*outputs)[0].data<float>();
//
// Errors are values, never exceptions: functions that can fail return an
// aotc::Status or an aotc::Result<T>. The only exceptions that can leave this
// header are std::bad_alloc from the standard containers it fills.
//
// Handles (Package, Model, Tensor) are movable, not copyable, and final; a
// moved-from handle may only be destroyed or assigned to. Package and Model
// share the underlying object through retain(), which is cheap (a reference
// count). Status, Result, TensorView and TensorSpec are plain values.

#ifndef AOTC_AOTC_HPP_
#define AOTC_AOTC_HPP_

// One concept per header; this one includes them all.
#include "aotc/model.hpp"
#include "aotc/status.hpp"
#include "aotc/tensor.hpp"

#endif  // AOTC_AOTC_HPP_
