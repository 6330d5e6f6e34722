// A whole sequence of one recurrent layer through oneDNN's fused RNN primitives, as two XLA
// FFI handlers (forward, backward) that seqlab/unroll/onednn_build.py compiles and loads and
// seqlab/unroll/onednn.py calls.
//
// Layouts (oneDNN's, which the Python side produces from seqlab's params):
//   x [T, N, I] (tnc), h0/c0 [N, H] (ldnc with L = D = 1), y [T, N, H],
//   Wx [I, G, H] and Wh [H, G, H] (ldigo), bias [Gb, H] float32 (ldgo).
// Cells (the `cell` attribute) and their gate blocks G (Gb for the bias):
//   0 LSTM (i, f, g, o), 1 GRU (u, r, o), 2 linear-before-reset GRU (u, r, o; Gb = 4),
//   3 Elman tanh, 4 Elman relu (G = 1).
// Leading dimensions in front of x's three (jax.vmap with vmap_method="broadcast_all":
// every operand and result carries them) are members run one after another.

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

namespace {

enum Cell : int64_t { kLstm = 0, kGru = 1, kLbrGru = 2, kRnnTanh = 3, kRnnRelu = 4 };

int64_t Gates(int64_t cell) { return cell == kLstm ? 4 : (cell == kRnnTanh || cell == kRnnRelu) ? 1 : 3; }
int64_t BiasGates(int64_t cell) { return cell == kLbrGru ? 4 : Gates(cell); }
bool IsLstm(int64_t cell) { return cell == kLstm; }

dnnl::algorithm CellKind(int64_t cell) {
  switch (cell) {
    case kLstm: return dnnl::algorithm::vanilla_lstm;
    case kGru: return dnnl::algorithm::vanilla_gru;
    case kLbrGru: return dnnl::algorithm::lbr_gru;
    default: return dnnl::algorithm::vanilla_rnn;
  }
}

dnnl::algorithm Activation(int64_t cell) {
  if (cell == kRnnTanh) return dnnl::algorithm::eltwise_tanh;
  if (cell == kRnnRelu) return dnnl::algorithm::eltwise_relu;
  return dnnl::algorithm::undef;
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The sizes that fix a plan; bf16 selects the bfloat16 configuration (data and weights
// bf16; bias, LSTM cell state and every gradient float32).
struct Key {
  int64_t cell, T, N, I, H;
  bool bf16;
  bool operator<(const Key& o) const {
    return std::tie(cell, T, N, I, H, bf16) < std::tie(o.cell, o.T, o.N, o.I, o.H, o.bf16);
  }
};

// Memory descriptors in seqlab's (user) layouts.
struct Descs {
  memory::desc x, h, c, wx, wh, bias, y;       // data (x, h, wx, wh, y in the data type)
  memory::desc dx, dh, dwx, dwh, dy;           // gradients (float32)
  memory::desc wx_any, wh_any, dwx_any, dwh_any;
  explicit Descs(const Key& k) {
    Dt d = k.bf16 ? Dt::bf16 : Dt::f32, f = Dt::f32;
    int64_t G = Gates(k.cell);
    x = {{k.T, k.N, k.I}, d, Tag::tnc};
    h = {{1, 1, k.N, k.H}, d, Tag::ldnc};
    c = {{1, 1, k.N, k.H}, f, Tag::ldnc};
    wx = {{1, 1, k.I, G, k.H}, d, Tag::ldigo};
    wh = {{1, 1, k.H, G, k.H}, d, Tag::ldigo};
    bias = {{1, 1, BiasGates(k.cell), k.H}, f, Tag::ldgo};
    y = {{k.T, k.N, k.H}, d, Tag::tnc};
    dx = {{k.T, k.N, k.I}, f, Tag::tnc};
    dh = {{1, 1, k.N, k.H}, f, Tag::ldnc};
    dwx = {{1, 1, k.I, G, k.H}, f, Tag::ldigo};
    dwh = {{1, 1, k.H, G, k.H}, f, Tag::ldigo};
    dy = {{k.T, k.N, k.H}, f, Tag::tnc};
    wx_any = {{1, 1, k.I, G, k.H}, d, Tag::any};
    wh_any = {{1, 1, k.H, G, k.H}, d, Tag::any};
    dwx_any = {{1, 1, k.I, G, k.H}, f, Tag::any};
    dwh_any = {{1, 1, k.H, G, k.H}, f, Tag::any};
  }
};

// Scratch memory comes from the caller (Scratchpad below), so that calls running at once on
// XLA's threads never share it.
dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// This thread's scratchpad, at least as large as `pd` needs.
memory Scratchpad(const dnnl::primitive_desc& pd) {
  thread_local std::vector<char> buffer;
  memory::desc d = pd.scratchpad_desc();
  if (buffer.size() < d.get_size()) buffer.resize(d.get_size());
  return memory(d, Engine(), buffer.data());
}

// rnn_primitive_desc_base's generic constructors are protected; these expose them for any cell.
struct ForwardPd : dnnl::rnn_primitive_desc_base {
  ForwardPd() = default;
  ForwardPd(const Key& k, const Descs& s, dnnl::prop_kind prop)
      : rnn_primitive_desc_base(Engine(), CellKind(k.cell), prop, Activation(k.cell),
                                dnnl::rnn_direction::unidirectional_left2right, s.x, s.h,
                                IsLstm(k.cell) ? &s.c : nullptr, nullptr, s.wx_any, s.wh_any,
                                nullptr, nullptr, s.bias, s.y, s.h,
                                IsLstm(k.cell) ? &s.c : nullptr, dnnl::rnn_flags::undef, 0.f,
                                0.f, UserScratchpad(), false) {}
};

struct BackwardPd : dnnl::rnn_primitive_desc_base {
  BackwardPd() = default;
  BackwardPd(const Key& k, const Descs& s, const ForwardPd& hint)
      : rnn_primitive_desc_base(
            Engine(), CellKind(k.cell), dnnl::prop_kind::backward, Activation(k.cell),
            dnnl::rnn_direction::unidirectional_left2right, s.x, s.h,
            IsLstm(k.cell) ? &s.c : nullptr, nullptr, s.wx_any, s.wh_any, nullptr, nullptr,
            s.bias, s.y, s.h, IsLstm(k.cell) ? &s.c : nullptr, s.dx, s.dh,
            IsLstm(k.cell) ? &s.dh : nullptr, nullptr, s.dwx_any, s.dwh_any, nullptr, nullptr,
            s.bias, s.dy, s.dh, IsLstm(k.cell) ? &s.dh : nullptr, dnnl::rnn_flags::undef, 0.f,
            0.f, hint, UserScratchpad(), false) {}
};

// Everything built once per Key: the primitives and the reorders between layouts.
struct Plan {
  Descs s;
  ForwardPd inference_pd, training_pd;
  BackwardPd backward_pd;
  dnnl::primitive inference, training, backward;
  explicit Plan(const Key& k)
      : s(k),
        inference_pd(k, s, dnnl::prop_kind::forward_inference),
        training_pd(k, s, dnnl::prop_kind::forward_training),
        backward_pd(k, s, training_pd),
        inference(inference_pd),
        training(training_pd),
        backward(backward_pd) {}
};

std::mutex plans_mutex;
std::map<Key, std::unique_ptr<Plan>> plans;
std::string last_error;

Plan& GetPlan(const Key& k) {
  std::lock_guard<std::mutex> lock(plans_mutex);
  auto& slot = plans[k];
  if (!slot) slot = std::make_unique<Plan>(k);
  return *slot;
}

// `user` memory in the layout `want`: itself, or a reordered copy (into storage kept alive
// by the returned memory object).
memory AsLayout(dnnl::stream& stream, const memory& user, const memory::desc& want) {
  if (user.get_desc() == want) return user;
  memory out(want, Engine());
  dnnl::reorder(user, out).execute(stream, const_cast<memory&>(user), out);
  return out;
}

memory Wrap(const memory::desc& d, void* data) { return memory(d, Engine(), data); }

ffi::Error Fail(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInternal, "seqlab oneDNN RNN: " + what);
}

// Per-member strides: the bytes of one member in a buffer whose trailing `rank` dims are one
// member's.
int64_t MemberBytes(const ffi::AnyBuffer& b, size_t rank) {
  auto dims = b.dimensions();
  int64_t n = ffi::ByteWidth(b.element_type());
  for (size_t i = dims.size() - rank; i < dims.size(); ++i) n *= dims[i];
  return n;
}

char* At(const ffi::AnyBuffer& b, size_t rank, int64_t member) {
  return static_cast<char*>(b.untyped_data()) + member * MemberBytes(b, rank);
}

struct Sizes {
  Key key;
  int64_t members;
};

Sizes SizesOf(const ffi::AnyBuffer& x, const ffi::AnyBuffer& h0, int64_t cell) {
  auto xd = x.dimensions();
  auto hd = h0.dimensions();
  int64_t r = xd.size();
  int64_t members = 1;
  for (int64_t i = 0; i < r - 3; ++i) members *= xd[i];
  Key key{cell, xd[r - 3], xd[r - 2], xd[r - 1], hd[hd.size() - 1],
          x.element_type() == ffi::DataType::BF16};
  return {key, members};
}

// body(m, stream) for every member m. Several members run in parallel on OpenMP's threads,
// one member per thread (oneDNN runs single-threaded inside a parallel region): a population
// of small layers keeps both cores busy without the per-step synchronisation of splitting
// one small GEMM over them.
// (A single member runs outside any parallel region: inside even a one-thread region,
// oneDNN's own parallel regions would be nested ones, whose threads GNU OpenMP creates anew
// at every step.)
template <typename Body>
ffi::Error ForEachMember(int64_t members, const Body& body) {
  std::string error;
  auto run = [&](int64_t m) {
    try {
      dnnl::stream stream(Engine());
      body(m, stream);
      stream.wait();
    } catch (const dnnl::error& e) {
#pragma omp critical
      error = e.what();
    }
  };
  if (members == 1) {
    run(0);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < members; ++m) run(m);
  }
  return error.empty() ? ffi::Error::Success() : Fail(error);
}

ffi::Error ForwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer wx,
                       ffi::AnyBuffer wh, ffi::AnyBuffer bias, ffi::Result<ffi::AnyBuffer> y,
                       ffi::Result<ffi::AnyBuffer> hT, ffi::Result<ffi::AnyBuffer> cT,
                       ffi::Result<ffi::AnyBuffer> workspace, int64_t cell, bool training) {
  try {
    auto [key, members] = SizesOf(x, h0, cell);
    Plan& p = GetPlan(key);
    const ForwardPd& pd = training ? p.training_pd : p.inference_pd;
    return ForEachMember(members, [&](int64_t m, dnnl::stream& stream) {
      memory wx_user = Wrap(p.s.wx, At(wx, 3, m)), wh_user = Wrap(p.s.wh, At(wh, 3, m));
      memory wx_mem = AsLayout(stream, wx_user, pd.weights_layer_desc());
      memory wh_mem = AsLayout(stream, wh_user, pd.weights_iter_desc());
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC_LAYER, Wrap(p.s.x, At(x, 3, m))},
          {DNNL_ARG_SRC_ITER, Wrap(p.s.h, At(h0, 2, m))},
          {DNNL_ARG_WEIGHTS_LAYER, wx_mem},
          {DNNL_ARG_WEIGHTS_ITER, wh_mem},
          {DNNL_ARG_BIAS, Wrap(p.s.bias, At(bias, 2, m))},
          {DNNL_ARG_DST_LAYER, Wrap(p.s.y, At(*y, 3, m))},
          {DNNL_ARG_DST_ITER, Wrap(p.s.h, At(*hT, 2, m))},
      };
      if (IsLstm(cell)) {
        args[DNNL_ARG_SRC_ITER_C] = Wrap(p.s.c, At(c0, 2, m));
        args[DNNL_ARG_DST_ITER_C] = Wrap(p.s.c, At(*cT, 2, m));
      }
      args[DNNL_ARG_SCRATCHPAD] = Scratchpad(pd);
      if (training) args[DNNL_ARG_WORKSPACE] = Wrap(pd.workspace_desc(), At(*workspace, 1, m));
      (training ? p.training : p.inference).execute(stream, args);
    });
  } catch (const dnnl::error& e) {
    return Fail(e.what());
  }
}

ffi::Error BackwardImpl(ffi::AnyBuffer x, ffi::AnyBuffer h0, ffi::AnyBuffer c0, ffi::AnyBuffer wx,
                        ffi::AnyBuffer wh, ffi::AnyBuffer bias, ffi::AnyBuffer y,
                        ffi::AnyBuffer hT, ffi::AnyBuffer cT, ffi::AnyBuffer workspace,
                        ffi::AnyBuffer dy, ffi::AnyBuffer dhT, ffi::AnyBuffer dcT,
                        ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dh0,
                        ffi::Result<ffi::AnyBuffer> dc0, ffi::Result<ffi::AnyBuffer> dwx,
                        ffi::Result<ffi::AnyBuffer> dwh, ffi::Result<ffi::AnyBuffer> dbias,
                        int64_t cell) {
  try {
    auto [key, members] = SizesOf(x, h0, cell);
    Plan& p = GetPlan(key);
    const BackwardPd& pd = p.backward_pd;
    return ForEachMember(members, [&](int64_t m, dnnl::stream& stream) {
      memory wx_mem = AsLayout(stream, Wrap(p.s.wx, At(wx, 3, m)), pd.weights_layer_desc());
      memory wh_mem = AsLayout(stream, Wrap(p.s.wh, At(wh, 3, m)), pd.weights_iter_desc());
      // The primitive adds into the weight gradients: start them at zero.
      memory dwx_user = Wrap(p.s.dwx, At(*dwx, 3, m)), dwh_user = Wrap(p.s.dwh, At(*dwh, 3, m));
      bool dwx_direct = pd.diff_weights_layer_desc() == p.s.dwx;
      bool dwh_direct = pd.diff_weights_iter_desc() == p.s.dwh;
      memory dwx_mem = dwx_direct ? dwx_user : memory(pd.diff_weights_layer_desc(), Engine());
      memory dwh_mem = dwh_direct ? dwh_user : memory(pd.diff_weights_iter_desc(), Engine());
      memory dbias_mem = Wrap(p.s.bias, At(*dbias, 2, m));
      for (memory* mem : {&dwx_mem, &dwh_mem, &dbias_mem})
        std::memset(mem->get_data_handle(), 0, mem->get_desc().get_size());
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC_LAYER, Wrap(p.s.x, At(x, 3, m))},
          {DNNL_ARG_SRC_ITER, Wrap(p.s.h, At(h0, 2, m))},
          {DNNL_ARG_WEIGHTS_LAYER, wx_mem},
          {DNNL_ARG_WEIGHTS_ITER, wh_mem},
          {DNNL_ARG_BIAS, Wrap(p.s.bias, At(bias, 2, m))},
          {DNNL_ARG_DST_LAYER, Wrap(p.s.y, At(y, 3, m))},
          {DNNL_ARG_DST_ITER, Wrap(p.s.h, At(hT, 2, m))},
          {DNNL_ARG_WORKSPACE, Wrap(pd.workspace_desc(), At(workspace, 1, m))},
          {DNNL_ARG_DIFF_DST_LAYER, Wrap(p.s.dy, At(dy, 3, m))},
          {DNNL_ARG_DIFF_DST_ITER, Wrap(p.s.dh, At(dhT, 2, m))},
          {DNNL_ARG_DIFF_SRC_LAYER, Wrap(p.s.dx, At(*dx, 3, m))},
          {DNNL_ARG_DIFF_SRC_ITER, Wrap(p.s.dh, At(*dh0, 2, m))},
          {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwx_mem},
          {DNNL_ARG_DIFF_WEIGHTS_ITER, dwh_mem},
          {DNNL_ARG_DIFF_BIAS, dbias_mem},
      };
      if (IsLstm(cell)) {
        args[DNNL_ARG_SRC_ITER_C] = Wrap(p.s.c, At(c0, 2, m));
        args[DNNL_ARG_DST_ITER_C] = Wrap(p.s.c, At(cT, 2, m));
        args[DNNL_ARG_DIFF_DST_ITER_C] = Wrap(p.s.dh, At(dcT, 2, m));
        args[DNNL_ARG_DIFF_SRC_ITER_C] = Wrap(p.s.dh, At(*dc0, 2, m));
      }
      args[DNNL_ARG_SCRATCHPAD] = Scratchpad(pd);
      p.backward.execute(stream, args);
      if (!dwx_direct) dnnl::reorder(dwx_mem, dwx_user).execute(stream, dwx_mem, dwx_user);
      if (!dwh_direct) dnnl::reorder(dwh_mem, dwh_user).execute(stream, dwh_mem, dwh_user);
    });
  } catch (const dnnl::error& e) {
    return Fail(e.what());
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlabRnnForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Arg<ffi::AnyBuffer>()  // Wx
                                  .Arg<ffi::AnyBuffer>()  // Wh
                                  .Arg<ffi::AnyBuffer>()  // bias
                                  .Ret<ffi::AnyBuffer>()  // y
                                  .Ret<ffi::AnyBuffer>()  // hT
                                  .Ret<ffi::AnyBuffer>()  // cT
                                  .Ret<ffi::AnyBuffer>()  // workspace
                                  .Attr<int64_t>("cell")
                                  .Attr<bool>("training"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SeqlabRnnBackward, BackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Arg<ffi::AnyBuffer>()  // Wx
                                  .Arg<ffi::AnyBuffer>()  // Wh
                                  .Arg<ffi::AnyBuffer>()  // bias
                                  .Arg<ffi::AnyBuffer>()  // y
                                  .Arg<ffi::AnyBuffer>()  // hT
                                  .Arg<ffi::AnyBuffer>()  // cT
                                  .Arg<ffi::AnyBuffer>()  // workspace
                                  .Arg<ffi::AnyBuffer>()  // dy
                                  .Arg<ffi::AnyBuffer>()  // dhT
                                  .Arg<ffi::AnyBuffer>()  // dcT
                                  .Ret<ffi::AnyBuffer>()  // dx
                                  .Ret<ffi::AnyBuffer>()  // dh0
                                  .Ret<ffi::AnyBuffer>()  // dc0
                                  .Ret<ffi::AnyBuffer>()  // dWx
                                  .Ret<ffi::AnyBuffer>()  // dWh
                                  .Ret<ffi::AnyBuffer>()  // dbias
                                  .Attr<int64_t>("cell"));

// Called from Python at trace time: the workspace bytes of one member's training forward,
// or -1 when oneDNN cannot build this configuration (seqlab_onednn_error() says why).
extern "C" int64_t seqlab_onednn_workspace_bytes(int64_t cell, int64_t T, int64_t N, int64_t I,
                                                 int64_t H, int bf16) {
  try {
    Plan& p = GetPlan(Key{cell, T, N, I, H, bf16 != 0});
    return static_cast<int64_t>(p.training_pd.workspace_desc().get_size());
  } catch (const dnnl::error& e) {
    std::lock_guard<std::mutex> lock(plans_mutex);
    last_error = e.what();
    return -1;
  }
}

extern "C" const char* seqlab_onednn_error() { return last_error.c_str(); }
