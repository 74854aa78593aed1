// Whole-sequence LSTM and GRU recurrences as TensorFlow CPU ops (lstm_keras/fused_engine.py).
//
// Why: on a small CPU, a step of a TF-graph RNN is a handful of tiny ops, each with a fixed
// scheduling price that dwarfs its arithmetic. These ops run all T steps of an LSTM (any variant
// given as attributes, FGR's gate recurrence included) or of a GRU (any variant) in one kernel: per step one product h_{t-1} R
// and the gate arithmetic, vectorised by Eigen.
// The input projection W x + b (one large product for every step) and the weight gradients
// (one large product of all h_{t-1} with all ∂L/∂z_t) stay in TensorFlow, outside the loop.
// Rows of the batch are independent, so the batch is split over the intra-op threads and each
// chunk runs its whole recurrence without synchronising.
//
// Build: python -m lstm_keras.fused_engine build (g++ and TensorFlow's headers).
#include <cmath>
#include <algorithm>
#include <map>
#include <vector>
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "Eigen/Core"

// A build of this file for another rung of the flag ladder, loaded beside the default one (the
// benchmark compares them in one process), names its ops with a suffix: LstmSequenceX8664V3.
#ifndef OP_SUFFIX
#define OP_SUFFIX ""
#endif

using namespace tensorflow;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapM = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
using CMapM = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
using Arr = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Row = Eigen::Array<float, 1, Eigen::Dynamic>;

// Sequences stay batch-major, [B, T, W], as Keras holds them (no transposes around the op):
// the rows b0 … b0+nb of step t lie T·W floats apart.
static MapM Step(float* base, int64_t T, int64_t W, int64_t t, int64_t b0, int64_t nb) {
  return MapM(base + (b0 * T + t) * W, nb, W, Eigen::OuterStride<>(T * W));
}
static CMapM Step(const float* base, int64_t T, int64_t W, int64_t t, int64_t b0, int64_t nb) {
  return CMapM(base + (b0 * T + t) * W, nb, W, Eigen::OuterStride<>(T * W));
}
// The previous state: step t−1 of the sequence, or the initial state [B, W] before step 0.
static CMapM Previous(const float* seq, const float* init, int64_t T, int64_t W, int64_t t, int64_t b0,
                      int64_t nb) {
  return t ? Step(seq, T, W, t - 1, b0, nb) : CMapM(init + b0 * W, nb, W, Eigen::OuterStride<>(W));
}

// A weight matrix W (depth × n) that multiplies a small block on every step, packed once per op.
// Eigen's product packs both factors on every call; for W that repacking took a fifth of a step
// at 256 units (more backwards, where W is the transpose of the stored matrix). Eigen's own
// packing and GEBP micro-kernel run here, so every rung of the flag ladder keeps its SIMD.
// In column-major terms y += x·W is yᵀ += Wᵀ·xᵀ: Wᵀ is GEBP's left factor, packed once, and
// xᵀ (a few rows of the batch) its right factor, packed per step.
class PackedWeight {
 public:
  using Index = Eigen::Index;
  // W = w (row-major, depth × n, rows ld apart), or, `transposed`, W = wᵀ for a row-major w (n × depth).
  PackedWeight(const float* w, Index depth, Index n, Index ld, bool transposed)
      : depth_(depth), n_(n), packed_(depth * n + kSlack) {
    if (depth == 0 || n == 0) return;
    if (transposed) Pack<Eigen::RowMajor>(w, ld);
    else Pack<Eigen::ColMajor>(w, ld);
  }
  // Floats of headroom after packed blocks: GEBP's loads run at most a few packets ahead.
  static constexpr Index kSlack = 256;

  // y += x·W for x (nb × depth) and y (nb × n), row-major blocks with any row stride; `scratch`
  // holds at least depth·nb floats (one per thread).
  template <typename X, typename Y>
  void AddProduct(const X& x, Y&& y, float* scratch) const {
    const Index nb = x.rows();
    if (nb == 0 || depth_ == 0 || n_ == 0) return;
    using RhsMapper = Eigen::internal::const_blas_data_mapper<float, Index, Eigen::ColMajor>;
    using ResMapper = Eigen::internal::blas_data_mapper<float, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
    Eigen::internal::gemm_pack_rhs<float, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<float, float, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
    pack_rhs(scratch, RhsMapper(x.data(), x.outerStride()), depth_, nb);
    gebp(ResMapper(y.data(), y.outerStride()), packed_.data(), scratch, n_, depth_, nb, 1.0f);
  }
  // y = x·W
  template <typename X, typename Y>
  void Product(const X& x, Y&& y, float* scratch) const {
    y.setZero();
    AddProduct(x, y, scratch);
  }

 private:
  using Traits = Eigen::internal::gebp_traits<float, float>;
  template <int Order>
  void Pack(const float* w, Index ld) {  // Wᵀ (n × depth) as GEBP's left factor
    using Mapper = Eigen::internal::const_blas_data_mapper<float, Index, Order>;
    Eigen::internal::gemm_pack_lhs<float, Index, Mapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, Order> pack;
    pack(packed_.data(), Mapper(w, ld), depth_, n_);
  }
  Index depth_, n_;
  std::vector<float, Eigen::aligned_allocator<float>> packed_;
};

// Room for the per-step packing of PackedWeight::AddProduct, for `nb` rows and the deepest weight.
using Scratch = std::vector<float, Eigen::aligned_allocator<float>>;

// Split the batch across the intra-op threads: each chunk of rows runs the whole recurrence.
template <typename F>
static void ForBatchChunks(OpKernelContext* ctx, int64_t B, int64_t cost, F fn) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  int64_t n = std::min<int64_t>(pool->NumThreads(), std::max<int64_t>(1, B / 16));
  if (n <= 1) { fn(0, B); return; }
  pool->ParallelFor(n, cost, [&](int64_t s, int64_t e) {
    for (int64_t k = s; k < e; ++k) fn(B * k / n, B * (k + 1) / n);
  });
}

// Per-chunk partial sums (of a gradient summed over the batch), added up in the order of the chunks'
// first rows whatever order the threads finish in, so that a run is bitwise repeatable.
class ChunkSums {
 public:
  void Add(int64_t b0, Arr sum) {
    mutex_lock hold(lock_);
    parts_.emplace(b0, std::move(sum));
  }
  template <typename Out>
  void SumInto(Out&& out) const {
    out.setZero();
    for (const auto& part : parts_) out.array() += part.second;
  }

 private:
  mutex lock_;
  std::map<int64_t, Arr> parts_;
};

// [B, T, W] from xp [B, T, ·] and a state [B, W].
static Status SequenceShape(shape_inference::InferenceContext* ctx, int state_input, int output) {
  shape_inference::ShapeHandle xp = ctx->input(0), out;
  TF_RETURN_IF_ERROR(ctx->WithRank(xp, 3, &xp));
  out = ctx->MakeShape({ctx->Dim(xp, 0), ctx->Dim(xp, 1), ctx->Dim(ctx->input(state_input), 1)});
  ctx->set_output(output, out);
  return OkStatus();
}

// ---------------------------------------------------------------- LSTM (any LSTMVariant)
//   z = W x + b + R h_{t-1}                    (slots i, f, c, o: only the learned gates own one)
//   z_gates += a_{t-1} Q                       (FGR: a = the learned gates of t−1, in order i, f, o)
//   i = σ(z_i + p_i ⊙ c_{t-1})                 (1 if the input gate is removed)
//   f = σ(z_f + p_f ⊙ c_{t-1})                 (1 if removed, 1 − i if coupled)
//   g = φ(z_c);  c = f ⊙ c_{t-1} + i ⊙ g
//   o = σ(z_o + p_o ⊙ c);  h = o ⊙ ψ(c)         (1 if the output gate is removed)
// The variant arrives as attributes (gate modes, peepholes, φ and ψ), interpreted once per op,
// as codes, not names: an activation's code is its position in
// lstm_keras.activation_names.KERNEL_ACTIVATIONS, a gate mode's in lstm_keras.variants.GATE_MODES.
enum class Act { kTanh, kLinear, kRelu, kSigmoid, kSigmoid2m1, kSigmoid4m2, kCount };
enum class Gate { kLearned, kOpen, kCoupled, kCount };

template <typename Enum>
static Status GetCode(OpKernelConstruction* ctx, const char* attr, Enum* value) {
  int code;
  TF_RETURN_IF_ERROR(ctx->GetAttr(attr, &code));
  if (code < 0 || code >= static_cast<int>(Enum::kCount)) {
    return errors::InvalidArgument(attr, ": unknown code ", code);
  }
  *value = static_cast<Enum>(code);
  return OkStatus();
}

// y = act(x) in one pass (x and y may be the same block).
template <typename X, typename Y>
static void Activate(Act act, const X& x, Y&& y) {
  switch (act) {
    case Act::kTanh: y = x.tanh(); break;
    case Act::kLinear: y = x; break;
    case Act::kRelu: y = x.max(0.f); break;
    case Act::kSigmoid: y = x.logistic(); break;
    case Act::kSigmoid2m1: y = 2.f * x.logistic() - 1.f; break;  // the 1997 LSTM's h
    case Act::kSigmoid4m2: y = 4.f * x.logistic() - 2.f; break;  // the 1997 LSTM's g
    case Act::kCount: break;  // refused by GetCode
  }
}

// y = σ(x + peep ⊙ c) for every row (peep: one gate's peephole weights). Row by row, because
// Eigen does not vectorise a broadcast over the rows of a strided block (`c.rowwise() * p` ran
// 3.6× slower than this loop, making the peephole variants' forward pass twice as slow).
template <typename Y, typename X, typename C, typename P>
static void PeepholeGate(Y&& y, const X& x, const C& c, const P& peep) {
  for (Eigen::Index r = 0; r < y.rows(); ++r) y.row(r) = (x.row(r) + c.row(r) * peep).logistic();
}

// y += x ⊙ peep for every row, and Σ_rows x ⊙ c into dpeep (a peephole's share of the backward pass).
template <typename Y, typename X, typename C, typename P, typename D>
static void PeepholeBack(Y&& y, const X& x, const C& c, const P& peep, D&& dpeep) {
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    y.row(r) += x.row(r) * peep;
    dpeep += x.row(r) * c.row(r);
  }
}

// dy = act'(x), from y = act(x).
template <typename Y>
static void Derivative(Act act, const Y& y, Arr& dy) {
  switch (act) {
    case Act::kTanh: dy = 1.f - y * y; break;
    case Act::kLinear: dy.setOnes(); break;
    case Act::kRelu: dy = (y > 0.f).template cast<float>(); break;
    case Act::kSigmoid: dy = y * (1.f - y); break;
    case Act::kSigmoid2m1: dy = 0.5f * (1.f + y) * (1.f - y); break;
    case Act::kSigmoid4m2: dy = 0.25f * (2.f + y) * (2.f - y); break;
    case Act::kCount: break;
  }
}

// The forward step of the usual LSTM (every gate learned, no peepholes, no gate recurrence, tanh
// for φ and ψ), one pass per row over z = act's block: the general step's seven Eigen passes read
// and wrote each row seven times. Eigen's own vectorised σ and tanh (its packet functions, for
// whatever SIMD the build targets), the scalar ones for a row's last H mod packet-size units.
static void PlainLstmForward(MapM& a, const CMapM& cp, MapM& c, MapM& h) {
  using Packet = Eigen::internal::packet_traits<float>::type;
  constexpr int64_t N = Eigen::internal::unpacket_traits<Packet>::size;
  using Eigen::internal::padd;
  using Eigen::internal::pmul;
  using Eigen::internal::ploadu;
  using Eigen::internal::pstoreu;
  const Eigen::internal::scalar_logistic_op<float> sigma;
  const Eigen::internal::scalar_tanh_op<float> tanh;
  const int64_t H = c.cols();
  for (Eigen::Index r = 0; r < a.rows(); ++r) {
    float* ar = a.row(r).data();  // z_i, z_f, z_c, z_o in; i, f, g, o out
    const float* cpr = cp.row(r).data();
    float* cr = c.row(r).data();
    float* hr = h.row(r).data();
    int64_t j = 0;
    for (; j + N <= H; j += N) {
      const Packet i = sigma.packetOp(ploadu<Packet>(ar + j)), f = sigma.packetOp(ploadu<Packet>(ar + H + j));
      const Packet g = tanh.packetOp(ploadu<Packet>(ar + 2 * H + j));
      const Packet o = sigma.packetOp(ploadu<Packet>(ar + 3 * H + j));
      const Packet cn = padd(pmul(f, ploadu<Packet>(cpr + j)), pmul(i, g));  // c = f ⊙ c_{t-1} + i ⊙ g
      pstoreu(ar + j, i); pstoreu(ar + H + j, f); pstoreu(ar + 2 * H + j, g); pstoreu(ar + 3 * H + j, o);
      pstoreu(cr + j, cn);
      pstoreu(hr + j, pmul(tanh.packetOp(cn), o));  // h = o ⊙ tanh(c)
    }
    for (; j < H; ++j) {
      const float i = sigma(ar[j]), f = sigma(ar[H + j]), g = tanh(ar[2 * H + j]), o = sigma(ar[3 * H + j]);
      cr[j] = f * cpr[j] + i * g;
      ar[j] = i; ar[H + j] = f; ar[2 * H + j] = g; ar[3 * H + j] = o;
      hr[j] = tanh(cr[j]) * o;
    }
  }
}

// The backward step of the usual LSTM (every gate learned, no peepholes, no gate recurrence), one
// pass per row: ∂L/∂z_t into D (which may be act's own block), ∂L/∂c_{t-1} into dc_next, and the
// sum of ∂L/∂z_t over rows into db. The general step below runs a dozen Eigen passes over
// (rows × H) temporaries; fused, the same arithmetic took 9 instead of 22 µs a step on one thread
// (64 rows × 128 units, in cache). The same equations, in the same order of operations.
template <bool kSequenceGrad>
static void PlainLstmBackRows(const CMapM& a, MapM& D, const Arr& y, const Arr& dpsi, const Arr& dphi,
                              const CMapM& cp, const float* dh_t, int64_t dh_stride, const Mat& dh_next,
                              Mat& dc_next, Arr& db) {
  const int64_t H = y.cols();
  float* __restrict__ sum = db.data();
  for (Eigen::Index r = 0; r < y.rows(); ++r) {
    const float* ar = a.row(r).data();
    float* dr = D.row(r).data();  // == ar in place: each element is read before it is written
    const float* __restrict__ yr = y.row(r).data();
    const float* __restrict__ dpsir = dpsi.row(r).data();
    const float* __restrict__ dphir = dphi.row(r).data();
    const float* __restrict__ cpr = cp.row(r).data();
    const float* __restrict__ dhn = dh_next.row(r).data();
    const float* __restrict__ dhr = kSequenceGrad ? dh_t + r * dh_stride : nullptr;
    float* __restrict__ dcn = dc_next.row(r).data();
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const float i = ar[j], f = ar[H + j], g = ar[2 * H + j], o = ar[3 * H + j];
      float dh = dhn[j];  // ∂L/∂h_t: through step t+1, and from outside
      if constexpr (kSequenceGrad) dh += dhr[j];
      const float dc = dcn[j] + dh * o * dpsir[j];           // ∂L/∂c_t
      const float zo = dh * yr[j] * o * (1.f - o);           // o = σ(z_o), h = o ⊙ ψ(c)
      const float zc = dc * i * dphir[j];                    // g = φ(z_c)
      const float zi = dc * g * i * (1.f - i);
      const float zf = dc * cpr[j] * f * (1.f - f);
      dcn[j] = dc * f;                                       // ∂L/∂c_{t-1}
      dr[j] = zi; dr[H + j] = zf; dr[2 * H + j] = zc; dr[3 * H + j] = zo;
      sum[j] += zi; sum[H + j] += zf; sum[2 * H + j] += zc; sum[3 * H + j] += zo;
    }
  }
}
// dh_t: ∂L/∂h_t from outside for these rows (dh_stride apart), or null where none came.
static void PlainLstmBack(const CMapM& a, MapM& D, const Arr& y, const Arr& dpsi, const Arr& dphi,
                          const CMapM& cp, const float* dh_t, int64_t dh_stride, const Mat& dh_next,
                          Mat& dc_next, Arr& db) {
  if (dh_t) PlainLstmBackRows<true>(a, D, y, dpsi, dphi, cp, dh_t, dh_stride, dh_next, dc_next, db);
  else PlainLstmBackRows<false>(a, D, y, dpsi, dphi, cp, dh_t, dh_stride, dh_next, dc_next, db);
}

struct LstmSpec {
  Gate in, forget, out;
  bool peepholes;
  Act candidate, output;
  int slot_i = -1, slot_f = -1, slot_c = -1, slot_o = -1, slots = 0;  // column blocks of z
  // The learned gates in the order of FGR's state a: their block of act and their slot of z.
  int learned = 0, act_block[3] = {0, 0, 0}, z_slot[3] = {0, 0, 0};
  int in_a[3] = {-1, -1, -1};  // gate i, f, o → its block of a (−1: not learned)
  int pad = 0;  // floats after each row of xp, act and ∂L/∂z (zeros): see LSTM_ATTRS

  // The usual LSTM's gates (PlainLstmForward / PlainLstmBack), given no gate recurrence.
  bool PlainGates() const {
    return in == Gate::kLearned && forget == Gate::kLearned && out == Gate::kLearned && !peepholes;
  }

  Status Parse(OpKernelConstruction* ctx) {
    TF_RETURN_IF_ERROR(GetCode(ctx, "input_gate", &in));
    TF_RETURN_IF_ERROR(GetCode(ctx, "forget_gate", &forget));
    TF_RETURN_IF_ERROR(GetCode(ctx, "output_gate", &out));
    TF_RETURN_IF_ERROR(ctx->GetAttr("peepholes", &peepholes));
    TF_RETURN_IF_ERROR(GetCode(ctx, "candidate_activation", &candidate));
    TF_RETURN_IF_ERROR(GetCode(ctx, "output_activation", &output));
    TF_RETURN_IF_ERROR(ctx->GetAttr("pad", &pad));
    // Keras's column order i, f, c, o, keeping only the slots that own weights.
    if (in == Gate::kLearned) slot_i = slots++;
    if (forget == Gate::kLearned) slot_f = slots++;
    slot_c = slots++;
    if (out == Gate::kLearned) slot_o = slots++;
    const int blocks[3] = {0, 1, 3}, own[3] = {slot_i, slot_f, slot_o};  // act: i, f, g, o
    for (int k = 0; k < 3; ++k) {
      if (own[k] < 0) continue;
      in_a[k] = learned;
      act_block[learned] = blocks[k];
      z_slot[learned++] = own[k];
    }
    return OkStatus();
  }
};

// `pad`: rows of xp, act and ∂L/∂z end in `pad` unused floats (zeros), so that rows a multiple
// of 2 KB long do not all fall on the same cache sets (fused_ops.row_pad says when and why).
#define LSTM_ATTRS                     \
  Attr("input_gate: int")                \
      .Attr("forget_gate: int")          \
      .Attr("output_gate: int")          \
      .Attr("peepholes: bool")           \
      .Attr("candidate_activation: int") \
      .Attr("output_activation: int")    \
      .Attr("pad: int >= 0 = 0")

REGISTER_OP("LstmSequence" OP_SUFFIX)
    .Input("xp: float")    // [B, T, S·H + pad]: W x + b for the S slots that own weights
    .Input("r: float")     // [H, S·H]
    .Input("p: float")     // [3, H]: peepholes of i, f, o (zeros where a gate has none)
    .Input("h0: float")    // [B, H]
    .Input("c0: float")    // [B, H]
    .Input("q: float")     // [L·H, L·H]: FGR's gate-to-gate matrix for the L learned gates, or [0, 0]
    .Input("a0: float")    // [B, L·H]: FGR's initial gates, or [B, 0]
    .Output("h: float")    // [B, T, H]
    .Output("c: float")    // [B, T, H]
    .Output("act: float")  // [B, T, 4H + pad]: i, f, g, o after their activations
    .LSTM_ATTRS
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 3, 0));
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 3, 1));
      ctx->set_output(2, ctx->UnknownShapeOfRank(3));
      return OkStatus();
    });

REGISTER_OP("LstmSequenceGrad" OP_SUFFIX)
    .Input("r: float")
    .Input("p: float")
    .Input("c0: float")
    .Input("c: float")
    .Input("act: float")
    .Input("dh: float")       // [B, T, H]: ∂L/∂h_t from outside the recurrence, or [0]: none
    .Input("dh_last: float")  // [B, H]: ∂L/∂h_T from outside (the final state), added to dh's last step
    .Input("dc_last: float")  // [B, H]: ∂L/∂c_T from outside (only c's last step leaves the layer)
    .Input("q: float")    // as LstmSequence's
    .Input("da: float")   // [B, L·H]: ∂L/∂a_T from outside (FGR's final gates), or [B, 0]
    .Output("dz: float")  // [B, T, S·H + pad]: ∂L/∂z_t (written over act where it can: S = 4, act not shared)
    .Output("dh0: float")
    .Output("dc0: float")
    .Output("dp: float")  // [3, H]: ∂L/∂p (zeros without peepholes)
    .Output("da0: float")  // [B, L·H]: ∂L/∂a0
    .Output("db: float")   // [S·H]: Σ_{b,t} ∂L/∂z_t, i.e. ∂L/∂b of xp = W x + b
    .LSTM_ATTRS
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      ctx->set_output(0, ctx->UnknownShapeOfRank(3));
      ctx->set_output(1, ctx->input(2));
      ctx->set_output(2, ctx->input(2));
      ctx->set_output(3, ctx->input(1));
      ctx->set_output(4, ctx->input(9));
      ctx->set_output(5, ctx->Vector(shape_inference::InferenceContext::kUnknownDim));
      return OkStatus();
    });

// FGR's q is [L·H, L·H] (its gates see each other) or [0, 0] (no gate recurrence).
static bool GateRecurrence(OpKernelContext* ctx, const Tensor& q, const LstmSpec& s, int64_t H) {
  const int64_t n = s.learned * H;
  if (q.dims() != 2 || !((q.dim_size(0) == n && q.dim_size(1) == n) || q.NumElements() == 0)) {
    ctx->CtxFailure(errors::InvalidArgument("LstmSequence: q must be [", n, ", ", n, "] or [0, 0]; got ",
                                            q.shape().DebugString()));
    return false;
  }
  return q.NumElements() > 0;
}

class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, spec_.Parse(c)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0); const Tensor& r = ctx->input(1); const Tensor& p = ctx->input(2);
    const Tensor& h0 = ctx->input(3); const Tensor& c0 = ctx->input(4);
    const Tensor& q = ctx->input(5); const Tensor& a0 = ctx->input(6);
    OP_REQUIRES(ctx, xp.dims() == 3 && r.dims() == 2 && h0.dims() == 2,
                errors::InvalidArgument("LstmSequence: xp must be rank 3, r and h0 rank 2"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), H = h0.dim_size(1), G = spec_.slots * H;
    const int64_t pad = spec_.pad, WX = G + pad, WA = 4 * H + pad;  // row widths of xp and act
    OP_REQUIRES(ctx, xp.dim_size(2) == WX && r.dim_size(0) == H && r.dim_size(1) == G && h0.dim_size(0) == B &&
                         c0.shape() == h0.shape() && p.NumElements() == 3 * H,
                errors::InvalidArgument("LstmSequence: xp [B, T, ", spec_.slots, "H + pad], r [H, ", spec_.slots,
                                        "H], p [3, H], h0 and c0 [B, H] (pad ", pad, "); got ", xp.shape().DebugString(), ", ",
                                        r.shape().DebugString(), ", ", p.shape().DebugString(), ", ",
                                        h0.shape().DebugString()));
    const bool fgr = GateRecurrence(ctx, q, spec_, H);
    if (!ctx->status().ok()) return;
    const int64_t L = fgr ? spec_.learned * H : 0;
    OP_REQUIRES(ctx, a0.dims() == 2 && a0.dim_size(0) == B && a0.dim_size(1) == L,
                errors::InvalidArgument("LstmSequence: a0 must be [B, ", L, "]; got ",
                                        a0.shape().DebugString()));
    Tensor *h, *c, *act;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, H}), &c));
    // With all four slots, z_t has act_t's layout: each step sums z into act_t and activates it in
    // place, and act takes over xp's buffer when nothing else holds xp (no copy, one (B, T, 4H) less).
    const bool in_act = spec_.slots == 4;
    if (in_act) OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 2, xp.shape(), &act));
    else OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, WA}), &act));
    const float* X = xp.flat<float>().data();
    const float* H0 = h0.flat<float>().data(); const float* C0 = c0.flat<float>().data();
    float* Hs = h->flat<float>().data(); float* Cs = c->flat<float>().data();
    float* A = act->flat<float>().data();
    CMapM P(p.flat<float>().data(), 3, H, Eigen::OuterStride<>(H));
    const float* A0 = a0.flat<float>().data();
    const Row pi = P.row(0).array(), pf = P.row(1).array(), po = P.row(2).array();
    const PackedWeight Rw(r.flat<float>().data(), H, G, G, false), Qw(q.flat<float>().data(), L, L, L, false);
    const LstmSpec& s = spec_;
    const bool plain = s.PlainGates() && !fgr && s.candidate == Act::kTanh && s.output == Act::kTanh;
    ForBatchChunks(ctx, B, T * H * (G + L) * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat z_own(in_act ? 0 : nb, G), gates(nb, L), from_gates(nb, L);  // FGR: a_{t-1} and a_{t-1} Q
      Scratch scratch(std::max(H, L) * nb + PackedWeight::kSlack);
      if (fgr) gates = CMapM(A0 + b0 * L, nb, L, Eigen::OuterStride<>(L));
      for (int64_t t = 0; t < T; ++t) {
        // The gates are computed where the backward pass will read them.
        MapM a = Step(A, T, WA, t, b0, nb);
        if (pad) a.rightCols(pad).setZero();
        MapM z = in_act ? MapM(a.data(), nb, G, a.outerStride()) : MapM(z_own.data(), nb, G, Eigen::OuterStride<>(G));
        CMapM xp_t = Step(X, T, WX, t, b0, nb);
        if (z.data() != xp_t.data()) z = xp_t.leftCols(G);  // (act took over xp's buffer: z already is xp_t)
        Rw.AddProduct(Previous(Hs, H0, T, H, t, b0, nb), z, scratch.data());  // z = W x + b + R h_{t-1}
        if (plain) {
          MapM c_t = Step(Cs, T, H, t, b0, nb), h_t = Step(Hs, T, H, t, b0, nb);
          PlainLstmForward(a, Previous(Cs, C0, T, H, t, b0, nb), c_t, h_t);
          continue;
        }
        if (fgr) {
          Qw.Product(gates, from_gates, scratch.data());  // a_{t-1} Q
          for (int k = 0; k < s.learned; ++k) z.middleCols(s.z_slot[k] * H, H) += from_gates.middleCols(k * H, H);
        }
        auto cp = Previous(Cs, C0, T, H, t, b0, nb).array();
        // In place (in_act): each gate reads its own block of z before writing it.
        auto pre = [&](int slot) { return z.middleCols(slot * H, H).array(); };
        auto i = a.middleCols(0, H).array(); auto f = a.middleCols(H, H).array();
        auto g = a.middleCols(2 * H, H).array(); auto o = a.middleCols(3 * H, H).array();
        if (s.in != Gate::kLearned) i.setOnes();
        else if (s.peepholes) PeepholeGate(i, pre(s.slot_i), cp, pi);
        else i = pre(s.slot_i).logistic();
        if (s.forget == Gate::kOpen) f.setOnes();
        else if (s.forget == Gate::kCoupled) f = 1.f - i;
        else if (s.peepholes) PeepholeGate(f, pre(s.slot_f), cp, pf);
        else f = pre(s.slot_f).logistic();
        Activate(s.candidate, pre(s.slot_c), g);
        auto c_new = Step(Cs, T, H, t, b0, nb).array();
        c_new = f * cp + i * g;  // c = f ⊙ c_{t-1} + i ⊙ g
        if (s.out != Gate::kLearned) o.setOnes();
        else if (s.peepholes) PeepholeGate(o, pre(s.slot_o), c_new, po);
        else o = pre(s.slot_o).logistic();
        auto h_new = Step(Hs, T, H, t, b0, nb).array();
        Activate(s.output, c_new, h_new);
        h_new *= o;  // h = o ⊙ ψ(c)
        for (int k = 0; fgr && k < s.learned; ++k) gates.middleCols(k * H, H) = a.middleCols(s.act_block[k] * H, H);
      }
    });
  }
 private:
  LstmSpec spec_;
};

class LstmSequenceGradOp : public OpKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, spec_.Parse(c)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& r = ctx->input(0); const Tensor& p = ctx->input(1); const Tensor& c0 = ctx->input(2);
    const Tensor& c = ctx->input(3); const Tensor& act = ctx->input(4);
    const Tensor& dh = ctx->input(5); const Tensor& dh_last = ctx->input(6); const Tensor& dc_last = ctx->input(7);
    const Tensor& q = ctx->input(8); const Tensor& da = ctx->input(9);
    const int64_t B = c.dim_size(0), T = c.dim_size(1), H = c.dim_size(2), G = spec_.slots * H;
    const int64_t pad = spec_.pad, WA = 4 * H + pad, WD = G + pad;  // row widths of act and ∂L/∂z
    OP_REQUIRES(ctx, act.dims() == 3 && act.dim_size(0) == B && act.dim_size(1) == T && act.dim_size(2) == WA,
                errors::InvalidArgument("LstmSequenceGrad: act must be [B, T, 4H + pad] = [", B, ", ", T, ", ", WA,
                                        "]; got ", act.shape().DebugString()));
    const bool fgr = GateRecurrence(ctx, q, spec_, H);
    if (!ctx->status().ok()) return;
    const int64_t L = fgr ? spec_.learned * H : 0;
    OP_REQUIRES(ctx, da.dims() == 2 && da.dim_size(0) == B && da.dim_size(1) == L,
                errors::InvalidArgument("LstmSequenceGrad: da must be [B, ", L, "]; got ",
                                        da.shape().DebugString()));
    OP_REQUIRES(ctx, (dh.shape() == c.shape() || dh.NumElements() == 0) && dh_last.shape() == c0.shape() &&
                         dc_last.shape() == c0.shape(),
                errors::InvalidArgument("LstmSequenceGrad: dh must be [B, T, H] or [0], dh_last and dc_last [B, H]; "
                                        "got ", dh.shape().DebugString(), ", ", dh_last.shape().DebugString(), ", ",
                                        dc_last.shape().DebugString()));
    Tensor *dz, *dh0, *dc0, *dp, *da0, *db;
    // ∂L/∂z_t takes act_t's place when their shapes agree and nothing else holds act: a step writes
    // each block of ∂L/∂z over its gate once it has read it, saving a (B, T, 4H) buffer.
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({4}, 0, TensorShape({B, T, WD}), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &dc0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, p.shape(), &dp));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, da.shape(), &da0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({G}), &db));
    // ∂L/∂p and ∂L/∂b, summed per chunk of rows; ∂L/∂b while each step's ∂L/∂z is still in cache
    // (a reduction over (B·T, S·H) afterwards read it all again: 5 % of a char-LM layer's step).
    ChunkSums dp_parts, db_parts;
    const float* C0 = c0.flat<float>().data(); const float* Cs = c.flat<float>().data();
    const float* A = act.flat<float>().data();
    const float* DH = dh.NumElements() ? dh.flat<float>().data() : nullptr;  // none: only dh_last
    float* DZ = dz->flat<float>().data();
    CMapM P(p.flat<float>().data(), 3, H, Eigen::OuterStride<>(H));
    const Row pi = P.row(0).array(), pf = P.row(1).array(), po = P.row(2).array();
    const PackedWeight Rt(r.flat<float>().data(), G, H, G, true), Qt(q.flat<float>().data(), L, L, L, true);
    const LstmSpec& s = spec_;
    const bool plain = s.PlainGates() && !fgr;  // PlainLstmBack's case (any φ and ψ)
    ForBatchChunks(ctx, B, T * H * (G + L) * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Scratch scratch(std::max(G, L) * nb + PackedWeight::kSlack);
      // ∂L/∂h_t and ∂L/∂c_t through step t+1; at t = T−1, what reaches the final state from outside.
      Mat dh_next = CMapM(dh_last.flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H));
      Mat dc_next = CMapM(dc_last.flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H));
      Mat da_next(nb, L), dgates(nb, L);  // FGR: ∂L/∂a_t through step t+1; ∂L/∂z of the gates
      if (fgr) da_next = CMapM(da.flat<float>().data() + b0 * L, nb, L, Eigen::OuterStride<>(L));
      // FGR: ∂L/∂(gate g of i, f, o) that reaches it through the next step's gates.
      auto from_next = [&](int g) { return da_next.middleCols(s.in_a[g] * H, H).array(); };
      Arr y(nb, H), dy(nb, H), dhv(nb, H), dcv(nb, H), di(nb, H);
      Arr dp_chunk = Arr::Zero(3, H);  // Σ over this chunk's rows and steps: i, f see c_{t-1}, o sees c_t
      Arr db_chunk = Arr::Zero(1, G);
      for (int64_t t = T - 1; t >= 0; --t) {
        // In place (∂L/∂z over act, all four slots): each block of ∂L/∂z is written after the last
        // read of its gate — o, then g (after di), then i, then f.
        CMapM a = Step(A, T, WA, t, b0, nb);
        auto i = a.middleCols(0, H).array(); auto f = a.middleCols(H, H).array();
        auto g = a.middleCols(2 * H, H).array(); auto o = a.middleCols(3 * H, H).array();
        auto ct = Step(Cs, T, H, t, b0, nb).array();
        auto cp = Previous(Cs, C0, T, H, t, b0, nb).array();
        MapM D_row = Step(DZ, T, WD, t, b0, nb);
        if (pad) D_row.rightCols(pad).setZero();  // read by the products outside (times zeros of W)
        MapM D(D_row.data(), nb, G, D_row.outerStride());
        auto dz = [&](int slot) { return D.middleCols(slot * H, H).array(); };
        Activate(s.output, ct, y);  // ψ(c_t)
        Derivative(s.output, y, dy);
        if (plain) {
          Derivative(s.candidate, g, di);  // φ'(z_c), from g
          PlainLstmBack(a, D, y, dy, di, Previous(Cs, C0, T, H, t, b0, nb), DH ? DH + (b0 * T + t) * H : nullptr,
                        T * H, dh_next, dc_next, db_chunk);
          Rt.Product(D, dh_next, scratch.data());  // ∂L/∂z_t Rᵀ
          continue;
        }
        dhv = dh_next.array();
        if (DH) dhv += Step(DH, T, H, t, b0, nb).array();
        dcv = dc_next.array() + dhv * o * dy;
        if (s.out == Gate::kLearned) {
          if (fgr) dz(s.slot_o) = (dhv * y + from_next(2)) * o * (1.f - o);
          else dz(s.slot_o) = dhv * y * o * (1.f - o);
          if (s.peepholes) PeepholeBack(dcv, dz(s.slot_o), ct, po, dp_chunk.row(2));  // o saw c_t
        }
        dc_next.array() = dcv * f;
        if (s.in == Gate::kLearned) {
          di = dcv * g;
          if (s.forget == Gate::kCoupled) di -= dcv * cp;  // f = 1 − i
          if (fgr) di += from_next(0);
        }
        Derivative(s.candidate, g, dy);
        dz(s.slot_c) = dcv * i * dy;
        if (s.in == Gate::kLearned) {
          dz(s.slot_i) = di * i * (1.f - i);
          if (s.peepholes) PeepholeBack(dc_next.array(), dz(s.slot_i), cp, pi, dp_chunk.row(0));
        }
        if (s.forget == Gate::kLearned) {
          if (fgr) dz(s.slot_f) = (dcv * cp + from_next(1)) * f * (1.f - f);
          else dz(s.slot_f) = dcv * cp * f * (1.f - f);
          if (s.peepholes) PeepholeBack(dc_next.array(), dz(s.slot_f), cp, pf, dp_chunk.row(1));
        }
        for (int64_t row = 0; row < nb; ++row) db_chunk += D.row(row).array();
        Rt.Product(D, dh_next, scratch.data());  // ∂L/∂z_t Rᵀ
        if (fgr) {
          for (int k = 0; k < s.learned; ++k) dgates.middleCols(k * H, H) = D.middleCols(s.z_slot[k] * H, H);
          Qt.Product(dgates, da_next, scratch.data());  // ∂L/∂z_gates Qᵀ
        }
      }
      if (fgr) MapM(da0->flat<float>().data() + b0 * L, nb, L, Eigen::OuterStride<>(L)) = da_next;
      MapM(dh0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dh_next;
      MapM(dc0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dc_next;
      dp_parts.Add(b0, std::move(dp_chunk));
      db_parts.Add(b0, std::move(db_chunk));
    });
    dp_parts.SumInto(MapM(dp->flat<float>().data(), 3, H, Eigen::OuterStride<>(H)));
    db_parts.SumInto(MapM(db->flat<float>().data(), 1, G, Eigen::OuterStride<>(G)));
  }

 private:
  LstmSpec spec_;
};

REGISTER_KERNEL_BUILDER(Name("LstmSequence" OP_SUFFIX).Device(DEVICE_CPU), LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("LstmSequenceGrad" OP_SUFFIX).Device(DEVICE_CPU), LstmSequenceGradOp);

// ---------------------------------------------------------------- GRU (any GRUVariant)
//   z = σ(x_z + U_z h_{t-1} + rb_z)          (no recurrent term: MUT1; U_z tanh(h_{t-1}): MUT3)
//   r = σ(x_r + U_r h_{t-1} + rb_r)          (1 if the reset gate is removed)
//   h̃ = tanh(x_h + r ⊙ (U_h h_{t-1} + rb_h))  reset after (Keras)
//   h̃ = tanh(x_h + U_h (r ⊙ h_{t-1}))        reset before (Cho et al. 2014, MUT1–3)
//   h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃  (z keeps) | z ⊙ h̃ + (1 − z) ⊙ h_{t-1} (z writes) | h̃ (no z)
// x_· is every input term (W x + b, x or tanh(x)), computed outside. The columns of U are the
// recurrent terms that exist, in the order z, r, h; those whose operand is h_{t-1} itself are
// contiguous and share one product per step.
enum class Update { kNone, kKeeps, kWrites, kCount };
enum class Operand { kNone, kState, kTanhState, kCount };  // what U_z multiplies

struct GruSpec {
  Update update;
  Operand z_operand;
  bool reset, reset_after;
  int slot_z = -1, slot_r = -1, slot_h = -1, slots = 0;  // column blocks of xp
  int col_z = -1, col_r = -1, col_h = -1, cols = 0;      // column blocks of U
  int shared_lo = 0, shared_n = 0;                      // blocks whose operand is h_{t-1}

  Status Parse(OpKernelConstruction* ctx) {
    TF_RETURN_IF_ERROR(GetCode(ctx, "update", &update));
    TF_RETURN_IF_ERROR(GetCode(ctx, "z_operand", &z_operand));
    TF_RETURN_IF_ERROR(ctx->GetAttr("reset", &reset));
    TF_RETURN_IF_ERROR(ctx->GetAttr("reset_after", &reset_after));
    if (update == Update::kNone && z_operand != Operand::kNone) {
      return errors::InvalidArgument("GruSequence: no update gate, yet z_operand ", static_cast<int>(z_operand));
    }
    if (update != Update::kNone) slot_z = slots++;
    if (reset) slot_r = slots++;
    slot_h = slots++;
    if (z_operand != Operand::kNone) col_z = cols++;
    if (reset) col_r = cols++;
    col_h = cols++;
    shared_lo = z_operand == Operand::kState ? 0 : col_z + 1;
    shared_n = cols - shared_lo - (reset_after ? 0 : 1);
    return OkStatus();
  }
};

#define GRU_ATTRS Attr("update: int").Attr("z_operand: int").Attr("reset: bool").Attr("reset_after: bool")

REGISTER_OP("GruSequence" OP_SUFFIX)
    .Input("xp: float")    // [B, T, S·H]: input terms of the S slots (z, r, h that exist)
    .Input("u: float")     // [H, C·H]: the C recurrent terms' matrices
    .Input("rb: float")    // [C·H]: recurrent bias (zeros where the variant has none)
    .Input("h0: float")    // [B, H]
    .Output("h: float")    // [B, T, H]
    .Output("act: float")  // [B, T, 3H]: z, r (1 without a reset gate), h̃
    .Output("rh: float")   // [B, T, H]: U_h h_{t-1} + rb_h (reset after the product), or [B, T, 0]
    .GRU_ATTRS
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 3, 0));
      ctx->set_output(1, ctx->UnknownShapeOfRank(3));
      ctx->set_output(2, ctx->UnknownShapeOfRank(3));
      return OkStatus();
    });

REGISTER_OP("GruSequenceGrad" OP_SUFFIX)
    .Input("u: float")
    .Input("h0: float")
    .Input("h: float")
    .Input("act: float")
    .Input("rh: float")
    .Input("dh: float")       // [B, T, H]: ∂L/∂h_t from outside the recurrence, or [0]: none
    .Input("dh_last: float")  // [B, H]: ∂L/∂h_T from outside (the final state), added to dh's last step
    .Output("dxp: float")   // [B, T, S·H]
    .Output("drec: float")  // [B, T, C·H]: ∂L/∂(each recurrent term, its bias included); over act if C = 3
    .Output("dh0: float")
    .Output("dxb: float")   // [S·H]: Σ_{b,t} dxp, ∂L/∂(the input bias)
    .Output("drb: float")   // [C·H]: Σ_{b,t} drec, ∂L/∂rb
    .GRU_ATTRS
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      ctx->set_output(0, ctx->UnknownShapeOfRank(3));
      ctx->set_output(1, ctx->UnknownShapeOfRank(3));
      ctx->set_output(2, ctx->input(1));
      ctx->set_output(3, ctx->Vector(shape_inference::InferenceContext::kUnknownDim));
      ctx->set_output(4, ctx->Vector(shape_inference::InferenceContext::kUnknownDim));
      return OkStatus();
    });

class GruSequenceOp : public OpKernel {
 public:
  explicit GruSequenceOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, spec_.Parse(c)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0); const Tensor& u = ctx->input(1);
    const Tensor& rb = ctx->input(2); const Tensor& h0 = ctx->input(3);
    const GruSpec& s = spec_;
    OP_REQUIRES(ctx, xp.dims() == 3 && u.dims() == 2 && h0.dims() == 2,
                errors::InvalidArgument("GruSequence: xp must be rank 3, u and h0 rank 2"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), H = h0.dim_size(1);
    OP_REQUIRES(ctx, xp.dim_size(2) == s.slots * H && u.dim_size(0) == H && u.dim_size(1) == s.cols * H &&
                         rb.NumElements() == s.cols * H && h0.dim_size(0) == B,
                errors::InvalidArgument("GruSequence: xp [B, T, ", s.slots, "H], u [H, ", s.cols, "H], rb [",
                                        s.cols, "H], h0 [B, H]; got ", xp.shape().DebugString(), ", ",
                                        u.shape().DebugString(), ", ", rb.shape().DebugString(), ", ",
                                        h0.shape().DebugString()));
    Tensor *h, *act, *rh;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &h));
    // With all three slots, xp_t's slots lie where act_t's gates go: each gate reads its own slot
    // and writes over it, so act takes over xp's buffer when nothing else holds xp.
    if (s.slots == 3) OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 1, xp.shape(), &act));
    else OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, 3 * H}), &act));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, s.reset_after ? H : 0}), &rh));
    const int64_t S = s.slots * H, C = s.cols * H;
    const float* X = xp.flat<float>().data(); const float* H0 = h0.flat<float>().data();
    float* Hs = h->flat<float>().data(); float* A = act->flat<float>().data(); float* RH = rh->flat<float>().data();
    const float* U = u.flat<float>().data();  // [H, C]: the blocks of U side by side
    Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> rbv(rb.flat<float>().data(), C);
    const PackedWeight shared(U + s.shared_lo * H, H, s.shared_n * H, C, false);  // the terms on h_{t-1}
    const PackedWeight Uz(U + std::max(s.col_z, 0) * H, H, s.z_operand == Operand::kTanhState ? H : 0, C, false);
    const PackedWeight Uh(U + s.col_h * H, H, s.reset_after ? 0 : H, C, false);  // reset before: U_h (r ⊙ h)
    ForBatchChunks(ctx, B, T * H * C * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat rec(nb, C), operand(nb, H);
      Scratch scratch(H * nb + PackedWeight::kSlack);
      for (int64_t t = 0; t < T; ++t) {
        CMapM Hp = Previous(Hs, H0, T, H, t, b0, nb);
        CMapM Xt = Step(X, T, S, t, b0, nb);
        MapM At = Step(A, T, 3 * H, t, b0, nb);
        if (s.shared_n) shared.Product(Hp, rec.middleCols(s.shared_lo * H, s.shared_n * H), scratch.data());
        if (s.z_operand == Operand::kTanhState) {
          operand.array() = Hp.array().tanh();
          Uz.Product(operand, rec.middleCols(s.col_z * H, H), scratch.data());
        }
        rec.array().rowwise() += rbv;  // (reset before: the h term is overwritten below)
        auto x = [&](int slot) { return Xt.middleCols(slot * H, H).array(); };
        auto term = [&](int col) { return rec.middleCols(col * H, H).array(); };
        // In place (act over xp): each gate reads its own slot of xp_t before writing over it.
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array();
        if (s.reset) R = (x(s.slot_r) + term(s.col_r)).logistic();
        else R.setOnes();
        if (s.reset_after) {
          auto Rh = Step(RH, T, H, t, b0, nb).array();
          Rh = term(s.col_h);
          Hc = (x(s.slot_h) + R * Rh).tanh();  // h̃, reset after the product
        } else {
          operand.array() = R * Hp.array();
          Uh.Product(operand, rec.middleCols(s.col_h * H, H), scratch.data());
          term(s.col_h).rowwise() += rbv.segment(s.col_h * H, H);
          Hc = (x(s.slot_h) + term(s.col_h)).tanh();  // h̃, reset before the product
        }
        if (s.update != Update::kNone) {
          if (s.z_operand == Operand::kNone) Z = x(s.slot_z).logistic();
          else Z = (x(s.slot_z) + term(s.col_z)).logistic();
        } else {
          Z.setZero();  // no update gate: act's z block is never read
        }
        auto Ht = Step(Hs, T, H, t, b0, nb).array();
        switch (s.update) {
          case Update::kKeeps: Ht = Z * Hp.array() + (1.f - Z) * Hc; break;   // z keeps h_{t-1}
          case Update::kWrites: Ht = Z * Hc + (1.f - Z) * Hp.array(); break;  // z writes h̃
          default: Ht = Hc; break;                                            // no update gate
        }
      }
    });
  }

 private:
  GruSpec spec_;
};

// The backward step of Keras's GRU (update gate keeping the state, reset gate after the product,
// U_z and U_r on h_{t-1}), one pass per row, as PlainLstmBack for the LSTM: ∂L/∂(input terms) into
// Dx, ∂L/∂(recurrent terms) into Dr (which may be act's own block), ∂L/∂h_{t-1} not through U into
// dh_next, and both bias sums. The same equations in the same order as the general step below.
template <bool kSequenceGrad>
static void PlainGruBack(const CMapM& a, const CMapM& hp, const float* rh_t, const float* dh_t, int64_t stride,
                         MapM& Dx, MapM& Dr, Mat& dh_next, Arr& dxb, Arr& drb) {
  const int64_t H = hp.cols();
  float* __restrict__ sum_x = dxb.data();
  float* __restrict__ sum_r = drb.data();
  for (Eigen::Index r = 0; r < hp.rows(); ++r) {
    const float* ar = a.row(r).data();
    float* dr = Dr.row(r).data();  // == ar in place: each element is read before it is written
    float* __restrict__ dx = Dx.row(r).data();
    const float* __restrict__ hpr = hp.row(r).data();
    const float* __restrict__ rhr = rh_t + r * stride;
    const float* __restrict__ dhr = kSequenceGrad ? dh_t + r * stride : nullptr;
    float* __restrict__ dhn = dh_next.row(r).data();
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      const float z = ar[j], reset = ar[H + j], hc = ar[2 * H + j];
      float dh = dhn[j];  // ∂L/∂h_t: through step t+1, and from outside
      if constexpr (kSequenceGrad) dh += dhr[j];
      const float dz = dh * (hpr[j] - hc);            // h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃
      const float dhc = dh * (1.f - z) * (1.f - hc * hc);  // ∂L/∂(pre-activation of h̃)
      dhn[j] = dh * z;
      const float zr = dhc * rhr[j] * reset * (1.f - reset);  // h̃ = tanh(x_h + r ⊙ (U_h h + b_h))
      const float zz = dz * z * (1.f - z);
      const float rec_h = dhc * reset;
      dx[j] = zz; dx[H + j] = zr; dx[2 * H + j] = dhc;
      dr[j] = zz; dr[H + j] = zr; dr[2 * H + j] = rec_h;
      sum_x[j] += zz; sum_x[H + j] += zr; sum_x[2 * H + j] += dhc;
      sum_r[j] += zz; sum_r[H + j] += zr; sum_r[2 * H + j] += rec_h;
    }
  }
}

class GruSequenceGradOp : public OpKernel {
 public:
  explicit GruSequenceGradOp(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, spec_.Parse(c)); }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& u = ctx->input(0); const Tensor& h0 = ctx->input(1);
    const Tensor& h = ctx->input(2); const Tensor& act = ctx->input(3); const Tensor& rh = ctx->input(4);
    const Tensor& dh = ctx->input(5); const Tensor& dh_last = ctx->input(6);
    const GruSpec& s = spec_;
    const int64_t B = h.dim_size(0), T = h.dim_size(1), H = h.dim_size(2), S = s.slots * H, C = s.cols * H;
    OP_REQUIRES(ctx, (dh.shape() == h.shape() || dh.NumElements() == 0) && dh_last.shape() == h0.shape(),
                errors::InvalidArgument("GruSequenceGrad: dh must be [B, T, H] or [0], dh_last [B, H]; got ",
                                        dh.shape().DebugString(), ", ", dh_last.shape().DebugString()));
    OP_REQUIRES(ctx, act.shape() == TensorShape({B, T, 3 * H}) &&
                         (!s.reset_after || rh.shape() == TensorShape({B, T, H})),
                errors::InvalidArgument("GruSequenceGrad: act must be [B, T, 3H] and rh [B, T, H] (reset after); got ",
                                        act.shape().DebugString(), ", ", rh.shape().DebugString()));
    Tensor *dxp, *drec, *dh0, *dxb, *drb;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, S}), &dxp));
    // ∂L/∂(recurrent terms) over act when their blocks match (z, r, h): a step writes each block
    // once it has read that gate, saving a (B, T, 3H) buffer.
    if (s.cols == 3) OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({3}, 1, TensorShape({B, T, C}), &drec));
    else OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, C}), &drec));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({S}), &dxb));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({C}), &drb));
    ChunkSums dxb_parts, drb_parts;  // the biases' gradients, summed while each step is in cache
    const float* H0 = h0.flat<float>().data(); const float* Hs = h.flat<float>().data();
    const float* A = act.flat<float>().data(); const float* RH = rh.flat<float>().data();
    const float* DH = dh.NumElements() ? dh.flat<float>().data() : nullptr;  // none: only dh_last
    float* DX = dxp->flat<float>().data(); float* DR = drec->flat<float>().data();
    const float* U = u.flat<float>().data();  // [H, C]: the blocks of U side by side
    // Backwards each block of U multiplies as its transpose.
    const PackedWeight shared(U + s.shared_lo * H, s.shared_n * H, H, C, true);
    const PackedWeight Uz(U + std::max(s.col_z, 0) * H, s.z_operand == Operand::kTanhState ? H : 0, H, C, true);
    const PackedWeight Uh(U + s.col_h * H, s.reset_after ? 0 : H, H, C, true);
    // PlainGruBack's case: Keras's GRU (slots and columns z, r, h; all three on h_{t-1}).
    const bool plain = s.update == Update::kKeeps && s.z_operand == Operand::kState && s.reset && s.reset_after;
    ForBatchChunks(ctx, B, T * H * C * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Scratch scratch(C * nb + PackedWeight::kSlack);
      // ∂L/∂h_t through step t+1; at t = T−1, what reaches the final state from outside.
      Mat dh_next = CMapM(dh_last.flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H));
      Mat back(nb, H);                 // a recurrent term's ∂ carried back through its U
      Arr dhv(nb, H), dhc(nb, H), dz(nb, H), dr(nb, H);
      Arr dxb_chunk = Arr::Zero(1, S), drb_chunk = Arr::Zero(1, C);
      for (int64_t t = T - 1; t >= 0; --t) {
        CMapM Hp = Previous(Hs, H0, T, H, t, b0, nb);
        CMapM At = Step(A, T, 3 * H, t, b0, nb);
        MapM Dx = Step(DX, T, S, t, b0, nb);
        MapM Dr = Step(DR, T, C, t, b0, nb);
        auto dx = [&](int slot) { return Dx.middleCols(slot * H, H).array(); };
        auto drt = [&](int col) { return Dr.middleCols(col * H, H).array(); };
        if (plain) {
          const float* rh_t = RH + (b0 * T + t) * H;
          if (DH) PlainGruBack<true>(At, Hp, rh_t, DH + (b0 * T + t) * H, T * H, Dx, Dr, dh_next, dxb_chunk, drb_chunk);
          else PlainGruBack<false>(At, Hp, rh_t, nullptr, T * H, Dx, Dr, dh_next, dxb_chunk, drb_chunk);
          shared.AddProduct(Dr, dh_next, scratch.data());  // + ∂L/∂(recurrent terms) Uᵀ
          continue;
        }
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array();
        dhv = dh_next.array();
        if (DH) dhv += Step(DH, T, H, t, b0, nb).array();
        switch (s.update) {  // h's dependence on z, h̃ and h_{t-1} directly
          case Update::kKeeps: dz = dhv * (Hp.array() - Hc); dhc = dhv * (1.f - Z); dh_next.array() = dhv * Z; break;
          case Update::kWrites: dz = dhv * (Hc - Hp.array()); dhc = dhv * Z; dh_next.array() = dhv * (1.f - Z); break;
          default: dhc = dhv; dh_next.setZero(); break;
        }
        dhc *= 1.f - Hc * Hc;  // ∂L/∂(pre-activation of h̃)
        dx(s.slot_h) = dhc;
        if (s.reset_after) {  // (in place, the h term's block goes over h̃, read above)
          drt(s.col_h) = dhc * R;
          dr = dhc * Step(RH, T, H, t, b0, nb).array();
        } else {  // the term U_h (r ⊙ h_{t-1})
          drt(s.col_h) = dhc;
          Uh.Product(Dr.middleCols(s.col_h * H, H), back, scratch.data());
          dr = back.array() * Hp.array();
          dh_next.array() += back.array() * R;
        }
        if (s.reset) {
          dx(s.slot_r) = dr * R * (1.f - R);
          drt(s.col_r) = dx(s.slot_r);
        }
        if (s.update != Update::kNone) {
          dx(s.slot_z) = dz * Z * (1.f - Z);
          if (s.z_operand != Operand::kNone) drt(s.col_z) = dx(s.slot_z);
          if (s.z_operand == Operand::kTanhState) {  // the term U_z tanh(h_{t-1})
            Uz.Product(Dr.middleCols(s.col_z * H, H), back, scratch.data());
            dh_next.array() += back.array() * (1.f - Hp.array().tanh().square());
          }
        }
        if (s.shared_n) shared.AddProduct(Dr.middleCols(s.shared_lo * H, s.shared_n * H), dh_next, scratch.data());
        for (int64_t row = 0; row < nb; ++row) {
          dxb_chunk += Dx.row(row).array();
          drb_chunk += Dr.row(row).array();
        }
      }
      MapM(dh0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dh_next;
      dxb_parts.Add(b0, std::move(dxb_chunk));
      drb_parts.Add(b0, std::move(drb_chunk));
    });
    dxb_parts.SumInto(MapM(dxb->flat<float>().data(), 1, S, Eigen::OuterStride<>(S)));
    drb_parts.SumInto(MapM(drb->flat<float>().data(), 1, C, Eigen::OuterStride<>(C)));
  }

 private:
  GruSpec spec_;
};

REGISTER_KERNEL_BUILDER(Name("GruSequence" OP_SUFFIX).Device(DEVICE_CPU), GruSequenceOp);
REGISTER_KERNEL_BUILDER(Name("GruSequenceGrad" OP_SUFFIX).Device(DEVICE_CPU), GruSequenceGradOp);
