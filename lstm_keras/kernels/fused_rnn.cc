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

// ---------------------------------------------------------------- LSTM (Keras: i, f, g, o)
//   z = W x + b + R h_{t-1};  i, f, o = σ(z_i, z_f, z_o);  g = tanh(z_g)
//   c = f ⊙ c_{t-1} + i ⊙ g;  h = o ⊙ tanh(c)
REGISTER_OP("LstmSequence")
    .Input("xp: float")   // [T, B, 4H]: W x + b
    .Input("r: float")    // [H, 4H]
    .Input("h0: float")   // [B, H]
    .Input("c0: float")   // [B, H]
    .Output("h: float")   // [T, B, H]
    .Output("c: float")   // [T, B, H]
    .Output("act: float") // [T, B, 4H]: i, f, g, o after their activations
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      auto xp = ctx->input(0);
      auto hs = ctx->input(2);
      shape_inference::ShapeHandle out;
      TF_RETURN_IF_ERROR(ctx->Concatenate(ctx->Vector(ctx->Dim(xp, 0)), hs, &out));
      ctx->set_output(0, out);
      ctx->set_output(1, out);
      ctx->set_output(2, xp);
      return OkStatus();
    });

REGISTER_OP("LstmSequenceGrad")
    .Input("r: float")
    .Input("c0: float")
    .Input("c: float")
    .Input("act: float")
    .Input("dh: float")   // [T, B, H]
    .Input("dc: float")   // [T, B, H]
    .Output("dz: float")  // [T, B, 4H]
    .Output("dh0: float")
    .Output("dc0: float")
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      ctx->set_output(0, ctx->input(3));
      ctx->set_output(1, ctx->input(1));
      ctx->set_output(2, ctx->input(1));
      return OkStatus();
    });

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

class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& xp = ctx->input(0); const Tensor& r = ctx->input(1);
    const Tensor& h0 = ctx->input(2); const Tensor& c0 = ctx->input(3);
    OP_REQUIRES(ctx, xp.dims() == 3 && r.dims() == 2 && h0.dims() == 2,
                errors::InvalidArgument("LstmSequence: xp must be rank 3, r and h0 rank 2"));
    const int64_t T = xp.dim_size(0), B = xp.dim_size(1), G = xp.dim_size(2), H = G / 4;
    OP_REQUIRES(ctx, G % 4 == 0 && r.dims() == 2 && r.dim_size(0) == H && r.dim_size(1) == G &&
                         h0.dim_size(0) == B && h0.dim_size(1) == H && c0.shape() == h0.shape(),
                errors::InvalidArgument("LstmSequence: xp [T, B, 4H], r [H, 4H], h0 and c0 [B, H]; got ",
                                        xp.shape().DebugString(), ", ", r.shape().DebugString(), ", ",
                                        h0.shape().DebugString(), ", ", c0.shape().DebugString()));
    Tensor *h, *c, *act;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, H}), &c));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({T, B, G}), &act));
    const float* X = xp.flat<float>().data(); const float* R = r.flat<float>().data();
    const float* H0 = h0.flat<float>().data(); const float* C0 = c0.flat<float>().data();
    float* Hs = h->flat<float>().data(); float* Cs = c->flat<float>().data();
    float* A = act->flat<float>().data();
    CMapM Rm(R, H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      for (int64_t t = 0; t < T; ++t) {
        const float* hp = t ? Hs + ((t - 1) * B + b0) * H : H0 + b0 * H;
        const float* cp = t ? Cs + ((t - 1) * B + b0) * H : C0 + b0 * H;
        float* a = A + (t * B + b0) * G;
        std::copy(X + (t * B + b0) * G, X + (t * B + b1) * G, a);
        MapM Z(a, nb, G, Eigen::OuterStride<>(G));
        Z.noalias() += CMapM(hp, nb, H, Eigen::OuterStride<>(H)) * Rm;
        MapM Ht(Hs + (t * B + b0) * H, nb, H, Eigen::OuterStride<>(H));
        MapM Ct(Cs + (t * B + b0) * H, nb, H, Eigen::OuterStride<>(H));
        CMapM Cp(cp, nb, H, Eigen::OuterStride<>(H));
        auto I = Z.middleCols(0, H).array(); auto F = Z.middleCols(H, H).array();
        auto Gc = Z.middleCols(2 * H, H).array(); auto O = Z.middleCols(3 * H, H).array();
        I = I.logistic(); F = F.logistic(); Gc = Gc.tanh(); O = O.logistic();
        Ct.array() = F * Cp.array() + I * Gc;       // c = f ⊙ c_{t-1} + i ⊙ g
        Ht.array() = O * Ct.array().tanh();         // h = o ⊙ tanh(c)
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
    const int64_t T = act.dim_size(0), B = act.dim_size(1), G = act.dim_size(2), H = G / 4;
    Tensor *dz, *dh0, *dc0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, act.shape(), &dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, c0.shape(), &dh0));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, c0.shape(), &dc0));
    const float* R = r.flat<float>().data(); const float* C0 = c0.flat<float>().data();
    const float* Cs = c.flat<float>().data(); const float* A = act.flat<float>().data();
    const float* DH = dh.flat<float>().data(); const float* DC = dc.flat<float>().data();
    float* DZ = dz->flat<float>().data(); float* DH0 = dh0->flat<float>().data();
    float* DC0 = dc0->flat<float>().data();
    CMapM Rm(R, H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat dh_next = Mat::Zero(nb, H);  // ∂L/∂h_{t} through step t+1
      Mat dc_next = Mat::Zero(nb, H);
      Arr tc(nb, H), dhv(nb, H), dcv(nb, H);
      for (int64_t t = T - 1; t >= 0; --t) {
        const float* cp = t ? Cs + ((t - 1) * B + b0) * H : C0 + b0 * H;
        const float* ct = Cs + (t * B + b0) * H;
        const float* a = A + (t * B + b0) * G;
        const float* dht = DH + (t * B + b0) * H; const float* dct = DC + (t * B + b0) * H;
        float* d = DZ + (t * B + b0) * G;
        CMapM Z(a, nb, G, Eigen::OuterStride<>(G));
        auto I = Z.middleCols(0, H).array(); auto F = Z.middleCols(H, H).array();
        auto Gc = Z.middleCols(2 * H, H).array(); auto O = Z.middleCols(3 * H, H).array();
        CMapM Cp(cp, nb, H, Eigen::OuterStride<>(H));
        tc = CMapM(ct, nb, H, Eigen::OuterStride<>(H)).array().tanh();
        dhv = CMapM(dht, nb, H, Eigen::OuterStride<>(H)).array() + dh_next.array();
        dcv = CMapM(dct, nb, H, Eigen::OuterStride<>(H)).array() + dc_next.array() + dhv * O * (1.f - tc * tc);
        MapM D(d, nb, G, Eigen::OuterStride<>(G));
        D.middleCols(0, H).array() = dcv * Gc * I * (1.f - I);
        D.middleCols(H, H).array() = dcv * Cp.array() * F * (1.f - F);
        D.middleCols(2 * H, H).array() = dcv * I * (1.f - Gc * Gc);
        D.middleCols(3 * H, H).array() = dhv * tc * O * (1.f - O);
        dc_next.array() = dcv * F;
        dh_next.noalias() = CMapM(d, nb, G, Eigen::OuterStride<>(G)) * Rm.transpose();
      }
      std::copy(dh_next.data(), dh_next.data() + nb * H, DH0 + b0 * H);
      std::copy(dc_next.data(), dc_next.data() + nb * H, DC0 + b0 * H);
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("LstmSequence").Device(DEVICE_CPU), LstmSequenceOp);
REGISTER_KERNEL_BUILDER(Name("LstmSequenceGrad").Device(DEVICE_CPU), LstmSequenceGradOp);

// ---------------------------------------------------------------- GRU (Keras: reset after)
//   z, r = σ(W_z,r x + b_z,r + U_z,r h_{t-1} + rb_z,r)
//   h̃ = tanh(W_h x + b_h + r ⊙ (U_h h_{t-1} + rb_h));  h = z ⊙ h_{t-1} + (1 − z) ⊙ h̃
REGISTER_OP("GruSequence")
    .Input("xp: float")    // [T, B, 3H]: W x + b_in  (z, r, h)
    .Input("u: float")     // [H, 3H]
    .Input("rb: float")    // [3H]: recurrent bias
    .Input("h0: float")    // [B, H]
    .Output("h: float")    // [T, B, H]
    .Output("act: float")  // [T, B, 4H]: z, r, h̃, U_h h + rb_h
    .SetShapeFn([](shape_inference::InferenceContext* ctx) {
      auto xp = ctx->input(0);
      shape_inference::ShapeHandle out, act;
      TF_RETURN_IF_ERROR(ctx->Concatenate(ctx->Vector(ctx->Dim(xp, 0)), ctx->input(3), &out));
      ctx->set_output(0, out);
      ctx->set_output(1, ctx->UnknownShapeOfRank(3));
      return OkStatus();
    });

REGISTER_OP("GruSequenceGrad")
    .Input("u: float")
    .Input("h0: float")
    .Input("h: float")
    .Input("act: float")
    .Input("dh: float")     // [T, B, H]
    .Output("dxp: float")   // [T, B, 3H]
    .Output("drec: float")  // [T, B, 3H]: ∂L/∂(U h + rb)
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
    const int64_t T = xp.dim_size(0), B = xp.dim_size(1), G = xp.dim_size(2), H = G / 3;
    OP_REQUIRES(ctx, G % 3 == 0 && u.dims() == 2 && u.dim_size(0) == H && u.dim_size(1) == G &&
                         rb.NumElements() == G && h0.dim_size(0) == B && h0.dim_size(1) == H,
                errors::InvalidArgument("GruSequence: xp [T, B, 3H], u [H, 3H], rb [3H], h0 [B, H]; got ",
                                        xp.shape().DebugString(), ", ", u.shape().DebugString(), ", ",
                                        rb.shape().DebugString(), ", ", h0.shape().DebugString()));
    Tensor *h, *act;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, H}), &h));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, 4 * H}), &act));
    const float* X = xp.flat<float>().data();
    const float* H0 = h0.flat<float>().data(); float* Hs = h->flat<float>().data();
    float* A = act->flat<float>().data();
    CMapM Um(u.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> rbv(rb.flat<float>().data(), G);
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat rec(nb, G);
      for (int64_t t = 0; t < T; ++t) {
        CMapM Hp(t ? Hs + ((t - 1) * B + b0) * H : H0 + b0 * H, nb, H, Eigen::OuterStride<>(H));
        CMapM Xt(X + (t * B + b0) * G, nb, G, Eigen::OuterStride<>(G));
        MapM At(A + (t * B + b0) * 4 * H, nb, 4 * H, Eigen::OuterStride<>(4 * H));
        MapM Ht(Hs + (t * B + b0) * H, nb, H, Eigen::OuterStride<>(H));
        rec.noalias() = Hp * Um;
        rec.array().rowwise() += rbv;
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array(); auto Rh = At.middleCols(3 * H, H).array();
        Z = (Xt.middleCols(0, H).array() + rec.middleCols(0, H).array()).logistic();      // z
        R = (Xt.middleCols(H, H).array() + rec.middleCols(H, H).array()).logistic();      // r
        Rh = rec.middleCols(2 * H, H).array();
        Hc = (Xt.middleCols(2 * H, H).array() + R * Rh).tanh();                           // h̃
        Ht.array() = Z * Hp.array() + (1.f - Z) * Hc;                                     // h
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
    const int64_t T = h.dim_size(0), B = h.dim_size(1), H = h.dim_size(2), G = 3 * H;
    Tensor *dxp, *drec, *dh0;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({T, B, G}), &dxp));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({T, B, G}), &drec));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, h0.shape(), &dh0));
    const float* H0 = h0.flat<float>().data(); const float* Hs = h.flat<float>().data();
    const float* A = act.flat<float>().data(); const float* DH = dh.flat<float>().data();
    float* DX = dxp->flat<float>().data(); float* DR = drec->flat<float>().data();
    CMapM Um(u.flat<float>().data(), H, G, Eigen::OuterStride<>(G));
    ForBatchChunks(ctx, B, T * H * G * 4, [&](int64_t b0, int64_t b1) {
      const int64_t nb = b1 - b0;
      Mat dh_next = Mat::Zero(nb, H);
      Arr dhv(nb, H), dhc(nb, H);
      for (int64_t t = T - 1; t >= 0; --t) {
        CMapM Hp(t ? Hs + ((t - 1) * B + b0) * H : H0 + b0 * H, nb, H, Eigen::OuterStride<>(H));
        CMapM At(A + (t * B + b0) * 4 * H, nb, 4 * H, Eigen::OuterStride<>(4 * H));
        MapM Dx(DX + (t * B + b0) * G, nb, G, Eigen::OuterStride<>(G));
        MapM Dr(DR + (t * B + b0) * G, nb, G, Eigen::OuterStride<>(G));
        auto Z = At.middleCols(0, H).array(); auto R = At.middleCols(H, H).array();
        auto Hc = At.middleCols(2 * H, H).array(); auto Rh = At.middleCols(3 * H, H).array();
        dhv = CMapM(DH + (t * B + b0) * H, nb, H, Eigen::OuterStride<>(H)).array() + dh_next.array();
        dhc = dhv * (1.f - Z) * (1.f - Hc * Hc);                    // ∂L/∂(pre-activation of h̃)
        Dx.middleCols(0, H).array() = dhv * (Hp.array() - Hc) * Z * (1.f - Z);
        Dx.middleCols(H, H).array() = dhc * Rh * R * (1.f - R);
        Dx.middleCols(2 * H, H).array() = dhc;
        Dr.middleCols(0, 2 * H) = Dx.middleCols(0, 2 * H);
        Dr.middleCols(2 * H, H).array() = dhc * R;
        dh_next.array() = dhv * Z;
        dh_next.noalias() += Dr * Um.transpose();
      }
      std::copy(dh_next.data(), dh_next.data() + nb * H, dh0->flat<float>().data() + b0 * H);
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("GruSequence").Device(DEVICE_CPU), GruSequenceOp);
REGISTER_KERNEL_BUILDER(Name("GruSequenceGrad").Device(DEVICE_CPU), GruSequenceGradOp);
