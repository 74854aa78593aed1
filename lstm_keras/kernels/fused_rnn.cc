// Whole-sequence LSTM and GRU recurrences as TensorFlow CPU ops (lstm_keras/fused_engine.py).
//
// Why: on a small CPU, a step of a TF-graph RNN is a handful of tiny ops, each with a fixed
// scheduling price that dwarfs its arithmetic. These ops run all T steps of Keras's LSTM and GRU
// in one kernel: per step one product h_{t-1} R and the gate arithmetic, vectorised by Eigen.
// The input projection W x + b (one large product for every step) and the weight gradients
// (one large product of all h_{t-1} with all ∂L/∂z_t) stay in TensorFlow, outside the loop.
// Rows of the batch are independent, so the batch is split over the intra-op threads and each
// chunk runs its whole recurrence without synchronising.
//
// Build: python -m lstm_keras.fused_engine build (g++ and TensorFlow's headers).
#include <cmath>
#include <algorithm>
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "Eigen/Core"

using namespace tensorflow;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapM = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
using CMapM = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
using Arr = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

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

// [B, T, W] from xp [B, T, ·] and a state [B, W].
static Status SequenceShape(shape_inference::InferenceContext* ctx, int state_input, int output) {
  shape_inference::ShapeHandle xp = ctx->input(0), out;
  TF_RETURN_IF_ERROR(ctx->WithRank(xp, 3, &xp));
  out = ctx->MakeShape({ctx->Dim(xp, 0), ctx->Dim(xp, 1), ctx->Dim(ctx->input(state_input), 1)});
  ctx->set_output(output, out);
  return OkStatus();
}

// ---------------------------------------------------------------- LSTM (Keras: i, f, g, o)
//   z = W x + b + R h_{t-1};  i, f, o = σ(z_i, z_f, z_o);  g = tanh(z_g)
//   c = f ⊙ c_{t-1} + i ⊙ g;  h = o ⊙ tanh(c)
REGISTER_OP("LstmSequence")
    .Input("xp: float")    // [B, T, 4H]: W x + b
    .Input("r: float")     // [H, 4H]
    .Input("h0: float")    // [B, H]
    .Input("c0: float")    // [B, H]
    .Output("h: float")    // [B, T, H]
    .Output("c: float")    // [B, T, H]
    .Output("act: float")  // [B, T, 4H]: i, f, g, o after their activations
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 2, 0));
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 2, 1));
      ctx->set_output(2, ctx->input(0));
      return OkStatus();
    });

REGISTER_OP("LstmSequenceGrad")
    .Input("r: float")
    .Input("c0: float")
    .Input("c: float")
    .Input("act: float")
    .Input("dh: float")   // [B, T, H]: ∂L/∂h_t from outside the recurrence
    .Input("dc: float")   // [B, T, H]: ∂L/∂c_t from outside
    .Output("dz: float")  // [B, T, 4H]: ∂L/∂z_t
    .Output("dh0: float")
    .Output("dc0: float")
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      ctx->set_output(0, ctx->input(3));
      ctx->set_output(1, ctx->input(1));
      ctx->set_output(2, ctx->input(1));
      return OkStatus();
    });

class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0); const Tensor& r = ctx->input(1);
    const Tensor& h0 = ctx->input(2); const Tensor& c0 = ctx->input(3);
    OP_REQUIRES(ctx, xp.dims() == 3 && r.dims() == 2 && h0.dims() == 2,
                errors::InvalidArgument("LstmSequence: xp must be rank 3, r and h0 rank 2"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), G = xp.dim_size(2), H = G / 4;
    OP_REQUIRES(ctx, G % 4 == 0 && r.dim_size(0) == H && r.dim_size(1) == G && h0.dim_size(0) == B &&
                         h0.dim_size(1) == H && c0.shape() == h0.shape(),
                errors::InvalidArgument("LstmSequence: xp [B, T, 4H], r [H, 4H], h0 and c0 [B, H]; got ",
                                        xp.shape().DebugString(), ", ", r.shape().DebugString(), ", ",
                                        h0.shape().DebugString(), ", ", c0.shape().DebugString()));
    Tensor *h, *c, *act;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, H}), &c));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, G}), &act));
    const float* X = xp.flat<float>().data();
    const float* H0 = h0.flat<float>().data(); const float* C0 = c0.flat<float>().data();
    float* Hs = h->flat<float>().data(); float* Cs = c->flat<float>().data();
    float* A = act->flat<float>().data();
    CMapM R(r.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {
        MapM Z = Step(A, T, G, t, b0, nb);  // the pre-activations, then (in place) the gates
        Z = Step(X, T, G, t, b0, nb);
        Z.noalias() += Previous(Hs, H0, T, H, t, b0, nb) * R;
        auto I = Z.middleCols(0, H).array(); auto F = Z.middleCols(H, H).array();
        auto Gc = Z.middleCols(2 * H, H).array(); auto O = Z.middleCols(3 * H, H).array();
        I = I.logistic(); F = F.logistic(); Gc = Gc.tanh(); O = O.logistic();
        MapM C = Step(Cs, T, H, t, b0, nb);
        C.array() = F * Previous(Cs, C0, T, H, t, b0, nb).array() + I * Gc;  // c = f ⊙ c_{t-1} + i ⊙ g
        Step(Hs, T, H, t, b0, nb).array() = O * C.array().tanh();            // h = o ⊙ tanh(c)
      }
    });
  }
};

class LstmSequenceGradOp : public OpKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& r = ctx->input(0); const Tensor& c0 = ctx->input(1); const Tensor& c = ctx->input(2);
    const Tensor& act = ctx->input(3); const Tensor& dh = ctx->input(4); const Tensor& dc = ctx->input(5);
    const int64_t B = act.dim_size(0), T = act.dim_size(1), G = act.dim_size(2), H = G / 4;
    Tensor *dz, *dh0, *dc0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, act.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &dc0));
    const float* C0 = c0.flat<float>().data(); const float* Cs = c.flat<float>().data();
    const float* A = act.flat<float>().data();
    const float* DH = dh.flat<float>().data(); const float* DC = dc.flat<float>().data();
    float* DZ = dz->flat<float>().data();
    CMapM R(r.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat dh_next = Mat::Zero(nb, H);  // ∂L/∂h_t through step t+1
      Mat dc_next = Mat::Zero(nb, H);  // ∂L/∂c_t through step t+1
      Arr tc(nb, H), dhv(nb, H), dcv(nb, H);
      for (int64_t t = T - 1; t >= 0; --t) {
        CMapM Z = Step(A, T, G, t, b0, nb);
        auto I = Z.middleCols(0, H).array(); auto F = Z.middleCols(H, H).array();
        auto Gc = Z.middleCols(2 * H, H).array(); auto O = Z.middleCols(3 * H, H).array();
        tc = Step(Cs, T, H, t, b0, nb).array().tanh();
        dhv = Step(DH, T, H, t, b0, nb).array() + dh_next.array();
        dcv = Step(DC, T, H, t, b0, nb).array() + dc_next.array() + dhv * O * (1.f - tc * tc);
        MapM D = Step(DZ, T, G, t, b0, nb);
        D.middleCols(0, H).array() = dcv * Gc * I * (1.f - I);
        D.middleCols(H, H).array() = dcv * Previous(Cs, C0, T, H, t, b0, nb).array() * F * (1.f - F);
        D.middleCols(2 * H, H).array() = dcv * I * (1.f - Gc * Gc);
        D.middleCols(3 * H, H).array() = dhv * tc * O * (1.f - O);
        dc_next.array() = dcv * F;
        dh_next.noalias() = D * R.transpose();
      }
      MapM(dh0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dh_next;
      MapM(dc0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dc_next;
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("LstmSequence").Device(DEVICE_CPU), LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("LstmSequenceGrad").Device(DEVICE_CPU), LstmSequenceGradOp);

// ---------------------------------------------------------------- GRU (Keras: reset after)
//   z, r = σ(W_z,r x + b_z,r + U_z,r h_{t-1} + rb_z,r)
//   h̃ = tanh(W_h x + b_h + r ⊙ (U_h h_{t-1} + rb_h));  h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃
REGISTER_OP("GruSequence")
    .Input("xp: float")    // [B, T, 3H]: W x + b_in  (z, r, h)
    .Input("u: float")     // [H, 3H]
    .Input("rb: float")    // [3H]: recurrent bias
    .Input("h0: float")    // [B, H]
    .Output("h: float")    // [B, T, H]
    .Output("act: float")  // [B, T, 4H]: z, r, h̃, U_h h_{t-1} + rb_h
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      TF_RETURN_IF_ERROR(SequenceShape(ctx, 3, 0));
      ctx->set_output(1, ctx->UnknownShapeOfRank(3));
      return OkStatus();
    });

REGISTER_OP("GruSequenceGrad")
    .Input("u: float")
    .Input("h0: float")
    .Input("h: float")
    .Input("act: float")
    .Input("dh: float")     // [B, T, H]: ∂L/∂h_t from outside the recurrence
    .Output("dxp: float")   // [B, T, 3H]
    .Output("drec: float")  // [B, T, 3H]: ∂L/∂(U h_{t-1} + rb)
    .Output("dh0: float")
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      ctx->set_output(0, ctx->UnknownShapeOfRank(3));
      ctx->set_output(1, ctx->UnknownShapeOfRank(3));
      ctx->set_output(2, ctx->input(1));
      return OkStatus();
    });

class GruSequenceOp : public OpKernel {
 public:
  explicit GruSequenceOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0); const Tensor& u = ctx->input(1);
    const Tensor& rb = ctx->input(2); const Tensor& h0 = ctx->input(3);
    OP_REQUIRES(ctx, xp.dims() == 3 && u.dims() == 2 && h0.dims() == 2,
                errors::InvalidArgument("GruSequence: xp must be rank 3, u and h0 rank 2"));
    const int64_t B = xp.dim_size(0), T = xp.dim_size(1), G = xp.dim_size(2), H = G / 3;
    OP_REQUIRES(ctx, G % 3 == 0 && u.dim_size(0) == H && u.dim_size(1) == G && rb.NumElements() == G &&
                         h0.dim_size(0) == B && h0.dim_size(1) == H,
                errors::InvalidArgument("GruSequence: xp [B, T, 3H], u [H, 3H], rb [3H], h0 [B, H]; got ",
                                        xp.shape().DebugString(), ", ", u.shape().DebugString(), ", ",
                                        rb.shape().DebugString(), ", ", h0.shape().DebugString()));
    Tensor *h, *act;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, H}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, 4 * H}), &act));
    const float* X = xp.flat<float>().data(); const float* H0 = h0.flat<float>().data();
    float* Hs = h->flat<float>().data(); float* A = act->flat<float>().data();
    CMapM U(u.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> rbv(rb.flat<float>().data(), G);
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat rec(nb, G);
      for (int64_t t = 0; t < T; ++t) {
        CMapM Hp = Previous(Hs, H0, T, H, t, b0, nb);
        CMapM Xt = Step(X, T, G, t, b0, nb);
        MapM At = Step(A, T, 4 * H, t, b0, nb);
        rec.noalias() = Hp * U;
        rec.array().rowwise() += rbv;
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array(); auto Rh = At.middleCols(3 * H, H).array();
        Z = (Xt.middleCols(0, H).array() + rec.middleCols(0, H).array()).logistic();  // z
        R = (Xt.middleCols(H, H).array() + rec.middleCols(H, H).array()).logistic();  // r
        Rh = rec.middleCols(2 * H, H).array();
        Hc = (Xt.middleCols(2 * H, H).array() + R * Rh).tanh();                       // h̃
        Step(Hs, T, H, t, b0, nb).array() = Z * Hp.array() + (1.f - Z) * Hc;          // h
      }
    });
  }
};

class GruSequenceGradOp : public OpKernel {
 public:
  explicit GruSequenceGradOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& u = ctx->input(0); const Tensor& h0 = ctx->input(1);
    const Tensor& h = ctx->input(2); const Tensor& act = ctx->input(3); const Tensor& dh = ctx->input(4);
    const int64_t B = h.dim_size(0), T = h.dim_size(1), H = h.dim_size(2), G = 3 * H;
    Tensor *dxp, *drec, *dh0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, G}), &dxp));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, G}), &drec));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &dh0));
    const float* H0 = h0.flat<float>().data(); const float* Hs = h.flat<float>().data();
    const float* A = act.flat<float>().data(); const float* DH = dh.flat<float>().data();
    float* DX = dxp->flat<float>().data(); float* DR = drec->flat<float>().data();
    CMapM U(u.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat dh_next = Mat::Zero(nb, H);  // ∂L/∂h_t through step t+1
      Arr dhv(nb, H), dhc(nb, H);
      for (int64_t t = T - 1; t >= 0; --t) {
        CMapM Hp = Previous(Hs, H0, T, H, t, b0, nb);
        CMapM At = Step(A, T, 4 * H, t, b0, nb);
        MapM Dx = Step(DX, T, G, t, b0, nb);
        MapM Dr = Step(DR, T, G, t, b0, nb);
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array(); auto Rh = At.middleCols(3 * H, H).array();
        dhv = Step(DH, T, H, t, b0, nb).array() + dh_next.array();
        dhc = dhv * (1.f - Z) * (1.f - Hc * Hc);  // ∂L/∂(pre-activation of h̃)
        Dx.middleCols(0, H).array() = dhv * (Hp.array() - Hc) * Z * (1.f - Z);
        Dx.middleCols(H, H).array() = dhc * Rh * R * (1.f - R);
        Dx.middleCols(2 * H, H).array() = dhc;
        Dr.middleCols(0, 2 * H) = Dx.middleCols(0, 2 * H);
        Dr.middleCols(2 * H, H).array() = dhc * R;
        dh_next.array() = dhv * Z;
        dh_next.noalias() += Dr * U.transpose();
      }
      MapM(dh0->flat<float>().data() + b0 * H, nb, H, Eigen::OuterStride<>(H)) = dh_next;
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("GruSequence").Device(DEVICE_CPU), GruSequenceOp);
REGISTER_KERNEL_BUILDER(Name("GruSequenceGrad").Device(DEVICE_CPU), GruSequenceGradOp);
