// test_cuda_attention.cpp: the fused hierarchical attention op on CUDA tensors
// (kernels/backend/attention_v1.cpp; v0 and v2, the bf16 tensor-core kernels, where named)
// against the truth in float64 and against the unfused computation (the composite op in
// the same precision; for v2, one with the same bf16 operands written here), and the
// attention properties (causality, padding, fully masked rows, odd T, T = 1, L = 4) on
// the device. Skipped without a
// CUDA device; the EMULATE build runs them on the CPU.
#include <cmath>
#include <sstream>

#include "attention/hkt_attention.h"
#include "common/mma_layout.h"
#include "cuda_backend.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {

struct Problem {
  std::int64_t B, H, T, dh;
  int L;
  bool causal;
  std::int64_t padded;  // keys padded at the end of the last sequence
};

// Random float64 inputs of one problem: q[0..L-1], k[0..L-1], v, alpha.
std::vector<Tensor> inputs(const Problem& p, std::uint64_t seed) {
  Generator g(seed);
  std::vector<Tensor> in;
  for (int part = 0; part < 2; ++part)
    for (int l = 0; l < p.L; ++l)
      in.push_back(
          Tensor::normal({p.B, p.H, (p.T + (std::int64_t{1} << l) - 1) >> l, p.dh}, g, 0.0, 1.0, DType::Float64));
  in.push_back(Tensor::normal({p.B, p.H, p.T, p.dh}, g, 0.0, 1.0, DType::Float64));
  in.push_back(Tensor::uniform({p.H, p.L}, g, 0.1, 1.0, DType::Float64));
  return in;
}

Tensor key_mask(const Problem& p) {
  std::vector<std::int64_t> keep(static_cast<std::size_t>(p.B * p.T), 1);
  for (std::int64_t j = p.T - p.padded; j < p.T; ++j) keep[static_cast<std::size_t>((p.B - 1) * p.T + j)] = 0;
  return Tensor::from_indices(keep, {p.B, p.T});
}

// Forward and backward (upstream g) of one implementation on one device and dtype: the
// output, then every input's gradient, all as float64 CPU tensors.
std::vector<Tensor> run(const Problem& p, const std::vector<Tensor>& base, const Tensor& g, bool fused, Device device,
                        DType dtype) {
  std::vector<Tensor> x;
  for (const auto& t : base) {
    x.push_back(t.to(dtype).to(device).detach());
    x.back().set_requires_grad(true);
  }
  const auto n = static_cast<std::ptrdiff_t>(p.L);
  HktAttentionOptions opt;
  opt.causal = p.causal;
  const std::vector<Tensor> q(x.begin(), x.begin() + n), k(x.begin() + n, x.begin() + 2 * n);
  Tensor y = fused ? hkt_attention_fused(q, k, x[2 * p.L], x[2 * p.L + 1], key_mask(p), opt)
                   : hkt_attention_composite(q, k, x[2 * p.L], x[2 * p.L + 1], key_mask(p), opt);
  y.backward(g.to(dtype).to(device));
  std::vector<Tensor> out{y.detach().to(Device::CPU).to(DType::Float64)};
  for (const auto& t : x) out.push_back(t.grad().to(Device::CPU).to(DType::Float64));
  return out;
}

// ||a - b|| / ||b|| (Frobenius).
double rel_err(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// Selects the fused attention kernel version (cuda::set_attention_kernel) for a scope.
struct KernelVersion {
  explicit KernelVersion(int version) { cuda::set_attention_kernel(version); }
  ~KernelVersion() { cuda::set_attention_kernel(1); }
  KernelVersion(const KernelVersion&) = delete;
  KernelVersion& operator=(const KernelVersion&) = delete;
};

}  // namespace

TEST_CASE("cuda attention: the fused kernels' float32 error is at most twice the unfused op's", "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  const Problem problems[] = {{2, 2, 33, 32, 3, false, 5},
                              {1, 3, 47, 64, 2, true, 4},
                              {2, 1, 17, 32, 1, false, 3},
                              {1, 2, 29, 16, 4, true, 2},
                              {1, 2, 1, 32, 3, false, 0}};
  for (const auto& p : problems) {
    INFO("B" << p.B << " H" << p.H << " T" << p.T << " dh" << p.dh << " L" << p.L << (p.causal ? " causal" : ""));
    const auto base = inputs(p, 7);
    Generator gg(8);
    const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
    const auto truth = run(p, base, g, false, Device::CPU, DType::Float64);
    const auto unfused = run(p, base, g, false, Device::CUDA, DType::Float32);
    const auto fused = run(p, base, g, true, Device::CUDA, DType::Float32);
    const auto fused64 = run(p, base, g, true, Device::CUDA, DType::Float64);
    const auto cpu_fused = run(p, base, g, true, Device::CPU, DType::Float32);
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const double e_fused = rel_err(fused[i], truth[i]), e_unfused = rel_err(unfused[i], truth[i]);
      INFO("tensor " << i << " (0 = output): fused " << e_fused << ", unfused " << e_unfused << ", cpu fused "
                     << rel_err(cpu_fused[i], truth[i]));
      // 1e-7: one float32 rounding step, for tensors the unfused op happens to get exact.
      CHECK(e_fused <= 2 * e_unfused + 1e-7);
      CHECK(rel_err(fused64[i], truth[i]) <= 1e-12);  // float64: the same function
    }
  }
}

TEST_CASE("cuda attention: causality, padding and fully masked rows hold on the device", "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  for (int version : {1, 2}) {  // v1 (the default) and v2, the bf16 kernels
    const KernelVersion kernel(version);
    INFO("kernel v" << version);
    const Problem p{2, 2, 13, 8, 3, true, 4};
    auto base = inputs(p, 21);
    const auto forward = [&](const std::vector<Tensor>& in, const Tensor& mask) {
      std::vector<Tensor> x;
      for (const auto& t : in) x.push_back(t.to(DType::Float32).to(Device::CUDA));
      HktAttentionOptions opt;
      opt.causal = true;
      const auto n = static_cast<std::ptrdiff_t>(p.L);
      return hkt_attention_fused({x.begin(), x.begin() + n}, {x.begin() + n, x.begin() + 2 * n}, x[2 * p.L],
                                 x[2 * p.L + 1], mask, opt)
          .to_vector();
    };
    const auto before = forward(base, key_mask(p));
    // Causality: change every key and value after query i0 (coarse keys whose fine
    // position 2^l u is after i0); rows 0..i0 stay bit-identical.
    const std::int64_t i0 = 5;
    auto later = base;
    for (int l = 0; l < p.L; ++l) {
      auto kv = later[static_cast<std::size_t>(p.L + l)].to_vector();
      const std::int64_t Tl = later[static_cast<std::size_t>(p.L + l)].shape()[2];
      for (std::int64_t bh = 0; bh < p.B * p.H; ++bh)
        for (std::int64_t u = 0; u < Tl; ++u)
          if ((u << l) > i0)
            for (std::int64_t d = 0; d < p.dh; ++d) kv[static_cast<std::size_t>((bh * Tl + u) * p.dh + d)] += 3.0;
      later[static_cast<std::size_t>(p.L + l)] =
          Tensor::from_vector(kv, later[static_cast<std::size_t>(p.L + l)].shape(), DType::Float64);
    }
    auto vv = later[static_cast<std::size_t>(2 * p.L)].to_vector();
    for (std::int64_t bh = 0; bh < p.B * p.H; ++bh)
      for (std::int64_t j = i0 + 1; j < p.T; ++j)
        for (std::int64_t d = 0; d < p.dh; ++d) vv[static_cast<std::size_t>((bh * p.T + j) * p.dh + d)] -= 5.0;
    later[static_cast<std::size_t>(2 * p.L)] =
        Tensor::from_vector(vv, base[static_cast<std::size_t>(2 * p.L)].shape(), DType::Float64);
    const auto after = forward(later, key_mask(p));
    for (std::int64_t bh = 0; bh < p.B * p.H; ++bh)
      for (std::int64_t i = 0; i < p.T; ++i)
        for (std::int64_t d = 0; d < p.dh; ++d) {
          const auto at = static_cast<std::size_t>((bh * p.T + i) * p.dh + d);
          if (i <= i0) CHECK(after[at] == before[at]);
        }
    // Padding: values of padded keys (the last 4 of sequence 1) do not matter.
    auto padded = base;
    vv = padded[static_cast<std::size_t>(2 * p.L)].to_vector();
    for (std::int64_t h = 0; h < p.H; ++h)
      for (std::int64_t j = p.T - p.padded; j < p.T; ++j)
        for (std::int64_t d = 0; d < p.dh; ++d) vv[static_cast<std::size_t>(((p.H + h) * p.T + j) * p.dh + d)] = 1e3;
    padded[static_cast<std::size_t>(2 * p.L)] =
        Tensor::from_vector(vv, base[static_cast<std::size_t>(2 * p.L)].shape(), DType::Float64);
    CHECK(forward(padded, key_mask(p)) == before);
    // A query whose keys are all masked (key 0 padded, causal: query 0 sees only key 0)
    // outputs 0 and passes back finite gradients.
    std::vector<std::int64_t> keep(static_cast<std::size_t>(p.B * p.T), 1);
    keep[0] = 0;
    const auto dead = forward(base, Tensor::from_indices(keep, {p.B, p.T}));
    for (std::int64_t d = 0; d < p.dh; ++d) CHECK(dead[static_cast<std::size_t>(d)] == 0.0);
    std::vector<Tensor> x;
    for (const auto& t : base) {
      x.push_back(t.to(DType::Float32).to(Device::CUDA).detach());
      x.back().set_requires_grad(true);
    }
    HktAttentionOptions opt;
    opt.causal = true;
    const auto n = static_cast<std::ptrdiff_t>(p.L);
    Tensor y = hkt_attention_fused({x.begin(), x.begin() + n}, {x.begin() + n, x.begin() + 2 * n}, x[2 * p.L],
                                   x[2 * p.L + 1], Tensor::from_indices(keep, {p.B, p.T}), opt);
    sum(mul(y, y)).backward();
    for (const auto& t : x)
      for (double v : t.grad().to_vector()) CHECK(std::isfinite(v));
  }
}

namespace {

// Sizes covered by 11 problems: T in {1, 5, 63, 64, 65, 70, 97, 127, 300}, L = 1..4,
// d_h in {5, 16, 33, 64, 128}, causal and not, with and without padding.
const Problem kTileProblems[] = {
    {1, 2, 1, 16, 4, false, 0},   {1, 2, 5, 16, 4, false, 1},   {2, 1, 63, 64, 3, true, 5},
    {1, 2, 64, 16, 4, false, 7},  {2, 1, 65, 128, 2, true, 3},  {1, 1, 127, 64, 1, false, 9},
    {1, 1, 127, 128, 4, true, 0}, {1, 1, 300, 16, 3, true, 20}, {1, 1, 300, 64, 2, false, 11},
    {2, 1, 70, 5, 3, true, 4},    {1, 2, 97, 33, 2, false, 6}};  // d_h not a multiple of 4

// ||a - b|| / max(||b||, floor): the floor (1 % of the problem's largest tensor norm)
// measures a gradient that is zero in exact arithmetic, such as a level whose single
// coarse block covers every key (T = 5, L = 4), by its absolute rounding noise.
double rel_err_floor(const Tensor& a, const Tensor& b, double floor) {
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), floor);
}

double norm(const Tensor& t) {
  double s = 0;
  for (double x : t.to_vector()) s += x * x;
  return std::sqrt(s);
}

// Through a stream: GCC 12 reports a false -Wrestrict for this chain of string + (its
// bug 105651).
std::string describe(const Problem& p) {
  std::ostringstream os;
  os << "B" << p.B << " H" << p.H << " T" << p.T << " dh" << p.dh << " L" << p.L << (p.causal ? " causal" : "")
     << " padded " << p.padded;
  return os.str();
}

}  // namespace

TEST_CASE("cuda attention v1: tiled kernels against the float64 truth, the unfused op, the CPU op and v0",
          "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  for (const auto& p : kTileProblems) {
    INFO(describe(p));
    const auto base = inputs(p, 31);
    Generator gg(32);
    const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
    const auto truth = run(p, base, g, false, Device::CPU, DType::Float64);
    const auto cpu_fused64 = run(p, base, g, true, Device::CPU, DType::Float64);
    const auto unfused = run(p, base, g, false, Device::CUDA, DType::Float32);
    const auto v1 = run(p, base, g, true, Device::CUDA, DType::Float32);
    const auto v1_64 = run(p, base, g, true, Device::CUDA, DType::Float64);
    std::vector<Tensor> v0_64;
    {
      KernelVersion v0(0);
      v0_64 = run(p, base, g, true, Device::CUDA, DType::Float64);
    }
    double floor = 0;
    for (const auto& t : truth) floor = std::max(floor, 0.01 * norm(t));
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const double e_v1 = rel_err_floor(v1[i], truth[i], floor), e_unfused = rel_err_floor(unfused[i], truth[i], floor);
      INFO("tensor " << i << " (0 = output): v1 " << e_v1 << ", unfused " << e_unfused);
      CHECK(e_v1 <= 2 * e_unfused + 1e-7);                             // float32: the FlashAttention criterion
      CHECK(rel_err_floor(v1_64[i], truth[i], floor) <= 1e-12);        // float64: the same function
      CHECK(rel_err_floor(v1_64[i], cpu_fused64[i], floor) <= 1e-12);  // ... as the fused CPU op
      CHECK(rel_err_floor(v1_64[i], v0_64[i], floor) <= 1e-12);        // ... and as v0, the per-row kernels
    }
  }
}

TEST_CASE("cuda attention v0, v1 and v2: NaN or inf in a masked key's K or V reaches nothing", "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  // T = 20, the last 4 keys of sequence 1 padded: fine keys 16..19, and the coarse rows
  // made only of them (level 1: rows 8, 9; level 2: row 4), are masked everywhere.
  const Problem p{2, 2, 20, 8, 3, false, 4};
  const auto base = inputs(p, 41);
  auto poisoned = base;
  const double bad[] = {std::nan(""), HUGE_VAL, -HUGE_VAL};
  for (int l = 0; l < p.L; ++l) {
    Tensor& k = poisoned[static_cast<std::size_t>(p.L + l)];
    auto kv = k.to_vector();
    const std::int64_t Tl = k.shape()[2];
    for (std::int64_t h = 0; h < p.H; ++h)
      for (std::int64_t u = (p.T - p.padded) >> l; u < Tl; ++u)
        for (std::int64_t d = 0; d < p.dh; ++d)
          kv[static_cast<std::size_t>(((p.H + h) * Tl + u) * p.dh + d)] = bad[(u + d) % 3];
    k = Tensor::from_vector(kv, k.shape(), DType::Float64);
  }
  Tensor& v = poisoned[static_cast<std::size_t>(2 * p.L)];
  auto vv = v.to_vector();
  for (std::int64_t h = 0; h < p.H; ++h)
    for (std::int64_t j = p.T - p.padded; j < p.T; ++j)
      for (std::int64_t d = 0; d < p.dh; ++d)
        vv[static_cast<std::size_t>(((p.H + h) * p.T + j) * p.dh + d)] = bad[(j + d) % 3];
  v = Tensor::from_vector(vv, v.shape(), DType::Float64);
  // The same inputs with the masked rows set to 0 instead.
  auto zeroed = poisoned;
  for (auto& t : zeroed) {
    auto x = t.to_vector();
    for (auto& e : x)
      if (!std::isfinite(e)) e = 0.0;
    t = Tensor::from_vector(x, t.shape(), DType::Float64);
  }
  Generator gg(42);
  const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
  for (int version : {0, 1, 2}) {
    KernelVersion kv(version);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      if (version == 2 && dtype == DType::Float64) continue;  // v2 takes float32 tensors
      INFO("v" << version << (dtype == DType::Float32 ? " float32" : " float64"));
      const auto a = run(p, poisoned, g, true, Device::CUDA, dtype), b = run(p, zeroed, g, true, Device::CUDA, dtype);
      for (std::size_t i = 0; i < a.size(); ++i) {
        INFO("tensor " << i << " (0 = output)");
        const auto x = a[i].to_vector(), y = b[i].to_vector();
        bool finite = true;
        for (double e : x) finite = finite && std::isfinite(e);
        CHECK(finite);
        CHECK(x == y);
      }
    }
  }
}

#if defined(HKT_EMULATE_CUDA)
TEST_CASE("cuda attention v1: the smaller tiles a device with less shared memory takes",
          "[cuda][attention][emulator]") {
  // 40 KiB per block leaves the forward tiles of 32 and 16 and backward tiles of 16
  // (the sizes of kernels/attention_dev/NOTES.md at 227 KiB are 64 and 32).
  struct Limit {
    Limit() { cuda::emu::set_max_shared_bytes(40 * 1024); }
    ~Limit() { cuda::emu::set_max_shared_bytes(227 * 1024); }
  } limit;
  for (const Problem& p : {Problem{1, 2, 77, 16, 4, true, 5}, Problem{2, 1, 50, 8, 2, false, 3}}) {
    INFO(describe(p));
    const auto base = inputs(p, 61);
    Generator gg(62);
    const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
    const auto truth = run(p, base, g, false, Device::CPU, DType::Float64);
    const auto v1_64 = run(p, base, g, true, Device::CUDA, DType::Float64);
    double floor = 0;
    for (const auto& t : truth) floor = std::max(floor, 0.01 * norm(t));
    for (std::size_t i = 0; i < truth.size(); ++i) CHECK(rel_err_floor(v1_64[i], truth[i], floor) <= 1e-12);
  }
  // Below the smallest tile's needs: a clear error, no launch.
  cuda::emu::set_max_shared_bytes(8 * 1024);
  const Problem wide = kTileProblems[6];  // d_h = 128, L = 4
  test::require_error(
      [&] {
        (void)run(wide, inputs(wide, 1), Tensor::zeros({wide.B, wide.H, wide.T, wide.dh}, DType::Float64), true,
                  Device::CUDA, DType::Float32);
      },
      "d_h = 128, L = 4 needs more shared memory per block than the device's 8192 bytes");
}

namespace {

// The op's float32 forward and backward on one problem (inputs from `seed`, the upstream
// gradient from seed + 1), with the kernel version in force: the same bits in two runs
// and under every emulator thread order.
void check_thread_orders(const Problem& p, std::uint64_t seed) {
  INFO(describe(p));
  const auto base = inputs(p, seed);
  Generator gg(seed + 1);
  const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
  const auto outputs = [&] {
    std::vector<std::vector<double>> all;
    for (const auto& t : run(p, base, g, true, Device::CUDA, DType::Float32)) all.push_back(t.to_vector());
    return all;
  };
  const auto first = outputs();
  CHECK(outputs() == first);  // two runs
  const std::string diff = test::thread_order_difference(outputs);
  INFO(diff);
  CHECK(diff.empty());
}

}  // namespace

TEST_CASE("cuda attention v1: bit-identical under every thread order and across runs", "[cuda][attention][emulator]") {
  for (const Problem& p : {Problem{1, 2, 65, 16, 3, true, 6}, Problem{1, 1, 127, 32, 4, false, 3}}) {
    check_thread_orders(p, 51);
  }
}
#endif

namespace {

// bf16(x) as a float: x rounded to bfloat16 (kernels/common/mma_layout.h).
float to_bf16(double x) { return cuda::bf16_to_float(cuda::bf16_bits(static_cast<float>(x))); }

// Q_l[u] . K_l[w] of sequence b, head h, with both rounded to bf16, summed in float32
// (x: the inputs of `inputs` as vectors).
float bf16_dot(const Problem& p, const std::vector<std::vector<double>>& x, int l, std::int64_t b, std::int64_t h,
               std::int64_t u, std::int64_t w) {
  const std::int64_t Tl = (p.T + (std::int64_t{1} << l) - 1) >> l;
  const auto& q = x[static_cast<std::size_t>(l)];
  const auto& k = x[static_cast<std::size_t>(p.L + l)];
  const std::int64_t qi = ((b * p.H + h) * Tl + u) * p.dh, kj = ((b * p.H + h) * Tl + w) * p.dh;
  float dot = 0.0f;
  for (std::int64_t d = 0; d < p.dh; ++d)
    dot += to_bf16(q[static_cast<std::size_t>(qi + d)]) * to_bf16(k[static_cast<std::size_t>(kj + d)]);
  return dot;
}

// The unfused forward with the inputs the v2 kernel sees, computed here in plain loops:
// Q_l, K_l, V rounded to bf16; each level's score alpha_l scale (q . k) summed in float32;
// the softmax in float32; P rounded to bf16; O = sum_j bf16(P) V, summed in float32.
// Returns O [B, H, T, d_h] as a float64 CPU tensor, and each row's LSE (-inf for a row
// with every key masked) in `lse`.
Tensor unfused_bf16_forward(const Problem& p, const std::vector<Tensor>& base, double scale, std::vector<double>& lse) {
  std::vector<std::vector<double>> x;
  for (const auto& t : base) x.push_back(t.to_vector());
  const auto keep = key_mask(p).to_vector();
  const auto& alpha = x[static_cast<std::size_t>(2 * p.L + 1)];
  const auto& v = x[static_cast<std::size_t>(2 * p.L)];
  std::vector<double> out(static_cast<std::size_t>(p.B * p.H * p.T * p.dh), 0.0);
  lse.assign(static_cast<std::size_t>(p.B * p.H * p.T), -HUGE_VAL);
  for (std::int64_t b = 0; b < p.B; ++b)
    for (std::int64_t h = 0; h < p.H; ++h)
      for (std::int64_t i = 0; i < p.T; ++i) {
        std::vector<float> s(static_cast<std::size_t>(p.T), -INFINITY);
        float mx = -INFINITY;
        for (std::int64_t j = 0; j < p.T; ++j) {
          if (keep[static_cast<std::size_t>(b * p.T + j)] == 0 || (p.causal && j > i)) continue;
          float score = 0.0f;
          for (int l = 0; l < p.L; ++l)
            score += static_cast<float>(alpha[static_cast<std::size_t>(h * p.L + l)] * scale) *
                     bf16_dot(p, x, l, b, h, i >> l, j >> l);
          s[static_cast<std::size_t>(j)] = score;
          mx = std::max(mx, score);
        }
        if (mx == -INFINITY) continue;  // every key masked: O = 0
        float sum = 0.0f;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        lse[static_cast<std::size_t>((b * p.H + h) * p.T + i)] = mx + std::log(static_cast<double>(sum));
        for (std::int64_t d = 0; d < p.dh; ++d) {
          float o = 0.0f;
          for (std::int64_t j = 0; j < p.T; ++j)
            o += to_bf16(s[static_cast<std::size_t>(j)] / sum) *
                 to_bf16(v[static_cast<std::size_t>(((b * p.H + h) * p.T + j) * p.dh + d)]);
          out[static_cast<std::size_t>(((b * p.H + h) * p.T + i) * p.dh + d)] = o;
        }
      }
  return Tensor::from_vector(out, {p.B, p.H, p.T, p.dh}, DType::Float64);
}

// The v2 kernel's forward on float32 copies of `base`: O as a float64 CPU tensor, and the LSE.
std::pair<Tensor, Tensor> v2_forward(const Problem& p, const std::vector<Tensor>& base, double scale) {
  std::vector<Tensor> x;
  for (const auto& t : base) x.push_back(t.to(DType::Float32).to(Device::CUDA));
  const Tensor keep = key_mask(p).to(Device::CUDA);
  cuda::AttentionArgs args{.v = x[static_cast<std::size_t>(2 * p.L)].raw_data(),
                           .alpha = x[static_cast<std::size_t>(2 * p.L + 1)].raw_data(),
                           .keep = static_cast<const std::int64_t*>(keep.raw_data()),
                           .B = p.B,
                           .H = p.H,
                           .T = p.T,
                           .dh = p.dh,
                           .L = p.L,
                           .causal = p.causal,
                           .scale = scale};
  for (int l = 0; l < p.L; ++l) {
    args.q[l] = x[static_cast<std::size_t>(l)].raw_data();
    args.k[l] = x[static_cast<std::size_t>(p.L + l)].raw_data();
    args.Tl[l] = (p.T + (std::int64_t{1} << l) - 1) >> l;
  }
  Tensor out = Tensor::zeros({p.B, p.H, p.T, p.dh}, DType::Float32, Device::CUDA);
  Tensor lse = Tensor::zeros({p.B, p.H, p.T}, DType::Float64, Device::CUDA);
  cuda::hkt_attention_forward_v2(args, static_cast<float*>(out.raw_data()), static_cast<double*>(lse.raw_data()));
  return {out.to(Device::CPU).to(DType::Float64), lse.to(Device::CPU)};
}

// The unfused backward whose matmuls take the operands the v2 kernel's products take,
// computed here in plain loops: Q_l, K_l, V and the upstream gradient dO rounded to bf16;
// per row, the scores as unfused_bf16_forward computes them, p = e^(s - LSE) with that
// function's LSE, dp = dO . V in float32, and the softmax's backward as an unfused op
// computes it, ds = p (dp - D) with D = sum_j p dp (float32); dS_l
// pooled level by level (2 x 2 sums) in float32; dV = sum_i bf16(p) dO,
// dQ_l = alpha_l scale sum_w bf16(dS_l) K_l, dK_l = alpha_l scale sum_u bf16(dS_l) Q_l and
// dalpha = sum dS_l S_l summed in float32. Returns the gradients in the order of run's:
// dq[0..L-1], dk[0..L-1], dv, dalpha, as float64 CPU tensors.
std::vector<Tensor> unfused_bf16_backward(const Problem& p, const std::vector<Tensor>& base, const Tensor& grad,
                                          double scale) {
  std::vector<std::vector<double>> x;
  for (const auto& t : base) x.push_back(t.to_vector());
  std::vector<double> lse;
  unfused_bf16_forward(p, base, scale, lse);
  const auto go = grad.to_vector();
  const auto keep = key_mask(p).to_vector();
  const auto& alpha = x[static_cast<std::size_t>(2 * p.L + 1)];
  const auto& v = x[static_cast<std::size_t>(2 * p.L)];
  auto Tl = [&](int l) { return (p.T + (std::int64_t{1} << l) - 1) >> l; };
  auto at = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  std::vector<std::vector<double>> dq(static_cast<std::size_t>(p.L)), dk(static_cast<std::size_t>(p.L));
  for (int l = 0; l < p.L; ++l) {
    dq[at(l)].assign(at(p.B * p.H * Tl(l) * p.dh), 0.0);
    dk[at(l)].assign(at(p.B * p.H * Tl(l) * p.dh), 0.0);
  }
  std::vector<double> dv(at(p.B * p.H * p.T * p.dh), 0.0), dalpha(at(p.H * p.L), 0.0);
  std::vector<float> dalpha_sum(at(p.H * p.L), 0.0f);
  const std::int64_t T = p.T;
  for (std::int64_t b = 0; b < p.B; ++b)
    for (std::int64_t h = 0; h < p.H; ++h) {
      const std::int64_t row = (b * p.H + h) * T;  // first row of (b, h) in [B, H, T, ..]
      auto dO = [&](std::int64_t i, std::int64_t d) { return to_bf16(go[at((row + i) * p.dh + d)]); };
      // ds [T][T] (0 where masked).
      std::vector<float> ds(at(T * T), 0.0f), pr(at(T * T), 0.0f);
      for (std::int64_t i = 0; i < T; ++i) {
        if (lse[at(row + i)] == -HUGE_VAL) continue;  // every key masked: p = 0
        std::vector<float> dps(at(T), 0.0f);
        float D = 0.0f;
        for (std::int64_t j = 0; j < T; ++j) {
          if (keep[at(b * T + j)] == 0 || (p.causal && j > i)) continue;
          float score = 0.0f;
          for (int l = 0; l < p.L; ++l)
            score += static_cast<float>(alpha[at(h * p.L + l)] * scale) * bf16_dot(p, x, l, b, h, i >> l, j >> l);
          const float prob = std::exp(score - static_cast<float>(lse[at(row + i)]));
          float dp = 0.0f;
          for (std::int64_t d = 0; d < p.dh; ++d) dp += dO(i, d) * to_bf16(v[at((row + j) * p.dh + d)]);
          pr[at(i * T + j)] = prob;
          dps[at(j)] = dp;
          D += prob * dp;
        }
        for (std::int64_t j = 0; j < T; ++j) ds[at(i * T + j)] = pr[at(i * T + j)] * (dps[at(j)] - D);
      }
      for (std::int64_t j = 0; j < T; ++j)
        for (std::int64_t d = 0; d < p.dh; ++d) {
          float sum = 0.0f;
          for (std::int64_t i = 0; i < T; ++i) sum += to_bf16(pr[at(i * T + j)]) * dO(i, d);
          dv[at((row + j) * p.dh + d)] = sum;
        }
      // Level by level: dS_l from dS_(l-1) (2 x 2 sums; rows and columns past the end add 0).
      std::vector<float> level = ds;
      std::int64_t n = T;
      for (int l = 0; l < p.L; ++l) {
        if (l > 0) {
          const std::int64_t m = Tl(l);
          std::vector<float> next(at(m * m), 0.0f);
          auto get = [&](std::int64_t r, std::int64_t c) { return r < n && c < n ? level[at(r * n + c)] : 0.0f; };
          for (std::int64_t u = 0; u < m; ++u)
            for (std::int64_t w = 0; w < m; ++w)
              next[at(u * m + w)] =
                  (get(2 * u, 2 * w) + get(2 * u, 2 * w + 1)) + (get(2 * u + 1, 2 * w) + get(2 * u + 1, 2 * w + 1));
          level = std::move(next);
          n = m;
        }
        const auto& q = x[at(l)];
        const auto& k = x[at(p.L + l)];
        const std::int64_t lrow = (b * p.H + h) * n;
        const float factor = static_cast<float>(alpha[at(h * p.L + l)] * scale);
        for (std::int64_t u = 0; u < n; ++u)
          for (std::int64_t d = 0; d < p.dh; ++d) {
            float sq = 0.0f, sk = 0.0f;
            for (std::int64_t w = 0; w < n; ++w) {
              sq += to_bf16(level[at(u * n + w)]) * to_bf16(k[at((lrow + w) * p.dh + d)]);
              sk += to_bf16(level[at(w * n + u)]) * to_bf16(q[at((lrow + w) * p.dh + d)]);
            }
            dq[at(l)][at((lrow + u) * p.dh + d)] = factor * sq;
            dk[at(l)][at((lrow + u) * p.dh + d)] = factor * sk;
          }
        for (std::int64_t u = 0; u < n; ++u)
          for (std::int64_t w = 0; w < n; ++w)
            dalpha_sum[at(h * p.L + l)] +=
                level[at(u * n + w)] * static_cast<float>(scale) * bf16_dot(p, x, l, b, h, u, w);
      }
    }
  for (std::size_t i = 0; i < dalpha.size(); ++i) dalpha[i] = dalpha_sum[i];
  std::vector<Tensor> grads;
  for (int l = 0; l < p.L; ++l)
    grads.push_back(Tensor::from_vector(dq[at(l)], {p.B, p.H, Tl(l), p.dh}, DType::Float64));
  for (int l = 0; l < p.L; ++l)
    grads.push_back(Tensor::from_vector(dk[at(l)], {p.B, p.H, Tl(l), p.dh}, DType::Float64));
  grads.push_back(Tensor::from_vector(dv, {p.B, p.H, T, p.dh}, DType::Float64));
  grads.push_back(Tensor::from_vector(dalpha, {p.H, p.L}, DType::Float64));
  return grads;
}

}  // namespace

TEST_CASE("cuda attention v2 (bf16 tensor cores): forward error at most twice an unfused bf16 computation's",
          "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  // Several key tiles of 64, partial tiles, causal and padded keys, every L, d_h from 16
  // to 128 (and 40: zeros up to 48), T = 1. The truth: the composite op in float64 on the
  // unrounded inputs.
  const Problem problems[] = {{2, 2, 150, 32, 3, false, 5}, {1, 3, 97, 64, 2, true, 4},   {2, 1, 70, 16, 1, false, 3},
                              {1, 2, 129, 40, 4, true, 2},  {1, 1, 64, 128, 3, false, 0}, {1, 2, 1, 32, 3, false, 0}};
  for (const auto& p : problems) {
    INFO(describe(p));
    const auto base = inputs(p, 17);
    const double scale = 1.0 / std::sqrt(static_cast<double>(p.dh));
    Generator gg(18);
    const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
    const Tensor truth = run(p, base, g, false, Device::CPU, DType::Float64)[0];
    std::vector<double> lse_unfused;
    const Tensor unfused = unfused_bf16_forward(p, base, scale, lse_unfused);
    const auto [fused, lse] = v2_forward(p, base, scale);
    const double e_fused = rel_err(fused, truth), e_unfused = rel_err(unfused, truth);
    INFO("v2 " << e_fused << ", unfused bf16 " << e_unfused);
    CHECK(e_unfused > 1e-4);  // bf16 inputs: far from float32's error (the reference did round)
    CHECK(e_fused <= 2 * e_unfused);
    // Each row's LSE against the unfused computation's (the same bf16 inputs; float32
    // sums in other orders), -inf in both for a row with every key masked.
    const auto l = lse.to_vector();
    for (std::size_t r = 0; r < l.size(); ++r) {
      INFO("row " << r << ": v2 " << l[r] << ", unfused " << lse_unfused[r]);
      if (lse_unfused[r] == -HUGE_VAL)
        CHECK(l[r] == -HUGE_VAL);
      else
        CHECK(std::abs(l[r] - lse_unfused[r]) <= 1e-5 * (1 + std::abs(lse_unfused[r])));
    }
  }
  {
    // Through the engine's op (cuda::set_attention_kernel(2), what `hkt bench attention
    // --impl fused-v2` selects): the same output as the kernel called directly.
    const Problem p{1, 2, 70, 16, 3, false, 3};
    const auto base = inputs(p, 23);
    const double scale = 1.0 / std::sqrt(16.0);
    const KernelVersion v2(2);
    std::vector<Tensor> x;
    for (const auto& t : base) x.push_back(t.to(DType::Float32).to(Device::CUDA).detach().set_requires_grad());
    HktAttentionOptions opt;
    opt.scale = scale;
    const std::vector<Tensor> q(x.begin(), x.begin() + 3), k(x.begin() + 3, x.begin() + 6);
    Tensor y = hkt_attention_fused(q, k, x[6], x[7], key_mask(p), opt);
    CHECK(y.to(Device::CPU).to(DType::Float64).to_vector() == v2_forward(p, base, scale).first.to_vector());
    std::vector<Tensor> x64;
    for (const auto& t : base) x64.push_back(t.to(Device::CUDA));
    require_error(
        [&] {
          hkt_attention_fused({x64[0], x64[1], x64[2]}, {x64[3], x64[4], x64[5]}, x64[6], x64[7], key_mask(p), opt);
        },
        "kernel v2 (bf16) takes float32 tensors, got float64");
  }
  require_error([] { cuda::set_attention_kernel(3); }, "set_attention_kernel: version 3 does not exist");
#if defined(HKT_EMULATE_CUDA)
  const Problem p{1, 2, 100, 32, 3, true, 7};
  const auto base = inputs(p, 19);
  CHECK(test::thread_order_difference([&] {
          const auto [o, lse] = v2_forward(p, base, 0.2);
          return std::vector<std::vector<double>>{o.to_vector(), lse.to_vector()};
        }) == "");
#endif
}

TEST_CASE("cuda attention v2 (bf16 tensor cores): every gradient's error at most twice an unfused bf16 computation's",
          "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  // The v1 test shapes and one with B and H both above 1, through the engine's op with
  // kernel v2 (its forward and backward). The truth: the composite op in float64 on the
  // unrounded inputs. Errors relative to each tensor's norm, floored at 1 % of the largest
  // one's (the coarsest levels' gradients are 0 up to rounding when T <= 2^(L-1)).
  std::vector<Problem> problems(std::begin(kTileProblems), std::end(kTileProblems));
  problems.push_back({2, 2, 130, 32, 3, false, 5});
  for (const auto& p : problems) {
    INFO(describe(p));
    const auto base = inputs(p, 41);
    Generator gg(42);
    const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
    const auto truth = run(p, base, g, false, Device::CPU, DType::Float64);
    const double scale = 1.0 / std::sqrt(static_cast<double>(p.dh));
    std::vector<double> lse_unused;
    std::vector<Tensor> unfused{unfused_bf16_forward(p, base, scale, lse_unused)};
    for (auto& t : unfused_bf16_backward(p, base, g, scale)) unfused.push_back(t);
    std::vector<Tensor> v2;
    {
      const KernelVersion version(2);
      v2 = run(p, base, g, true, Device::CUDA, DType::Float32);
    }
    double floor = 0;
    for (const auto& t : truth) floor = std::max(floor, 0.01 * norm(t));
    for (std::size_t i = 0; i < truth.size(); ++i) {
      const double e_v2 = rel_err_floor(v2[i], truth[i], floor), e_unfused = rel_err_floor(unfused[i], truth[i], floor);
      const double e_between = rel_err_floor(v2[i], unfused[i], floor);
      INFO("tensor " << i << " (0 = output, then dq_l, dk_l, dv, dalpha): v2 " << e_v2 << ", unfused bf16 " << e_unfused
                     << ", v2 against unfused " << e_between);
      // + 1e-5 of the floor (1e-7 of the largest tensor: float32's rounding): the coarsest
      // levels at T <= 2^(L-1) have gradients that are 0 up to it in both.
      CHECK(e_v2 <= 2 * e_unfused + 1e-5);
      if (i == 0) {
        CHECK(e_unfused > 1e-4);  // the reference did round (bf16 inputs: far from float32's error)
      } else {
        // The backward recomputes P from the LSE and D from P and dP, so its gradients and
        // the reference's round the same operands: they agree far more closely than either
        // agrees with the truth (measured: at most 0.02 of the reference's error), which
        // catches a mistake far below the bf16 error. (The forward rounds P before
        // normalising, the reference after: the outputs differ by about that rounding.)
        CHECK(e_between <= 0.1 * e_unfused + 1e-5);
      }
    }
  }
}

#if defined(HKT_EMULATE_CUDA)
TEST_CASE(
    "cuda attention v2: the backward is bit-identical under every thread order, and too little shared memory refuses",
    "[cuda][attention][emulator]") {
  const KernelVersion version(2);
  for (const Problem& p : {Problem{1, 2, 100, 16, 3, true, 6}, Problem{1, 1, 70, 32, 4, false, 3}}) {
    check_thread_orders(p, 53);
  }
  struct Limit {
    Limit() { cuda::emu::set_max_shared_bytes(40 * 1024); }
    ~Limit() { cuda::emu::set_max_shared_bytes(227 * 1024); }
  } limit;
  const Problem wide = kTileProblems[6];  // d_h = 128, L = 4: the forward needs 92 KiB, the backward 210 KiB
  test::require_error(
      [&] {
        (void)run(wide, inputs(wide, 1), Tensor::zeros({wide.B, wide.H, wide.T, wide.dh}, DType::Float64), true,
                  Device::CUDA, DType::Float32);
      },
      "hkt_attention_forward_v2: d_h = 128, L = 4 needs");
  cuda::emu::set_max_shared_bytes(100 * 1024);
  {
    // With model.attention_precision = "bf16" (the option), a forward whose backward will
    // not fit is refused before it runs; without gradients it runs.
    const auto base = inputs(wide, 2);
    std::vector<Tensor> x;
    for (const auto& t : base) x.push_back(t.to(DType::Float32).to(Device::CUDA).detach().set_requires_grad());
    HktAttentionOptions opt;
    opt.precision = AttentionPrecision::Bf16;
    const auto forward = [&] {
      return hkt_attention_fused({x[0], x[1], x[2], x[3]}, {x[4], x[5], x[6], x[7]}, x[8], x[9], key_mask(wide), opt);
    };
    test::require_error([&] { (void)forward(); }, "hkt_attention_backward_v2: d_h = 128, L = 4 needs 215040 bytes");
    const NoGradGuard no_grad;
    CHECK(forward().shape() == Shape{wide.B, wide.H, wide.T, wide.dh});
  }
  test::require_error(
      [&] {
        (void)run(wide, inputs(wide, 1), Tensor::zeros({wide.B, wide.H, wide.T, wide.dh}, DType::Float64), true,
                  Device::CUDA, DType::Float32);
      },
      "hkt_attention_backward_v2: d_h = 128, L = 4 needs");
}
#endif

TEST_CASE("cuda attention: AttentionPrecision::Bf16 runs float32 tensors through v2 and leaves float64 alone",
          "[cuda][attention]") {
  HKT_SKIP_UNLESS_CUDA();
  const Problem p{1, 2, 70, 16, 3, true, 3};
  const auto base = inputs(p, 71);
  Generator gg(72);
  const Tensor g = Tensor::normal({p.B, p.H, p.T, p.dh}, gg, 0.0, 1.0, DType::Float64);
  // The op with the option (what model.attention_precision = "bf16" sets), forward and
  // backward, as float64 CPU vectors.
  const auto with_precision = [&](DType dtype) {
    std::vector<Tensor> x;
    for (const auto& t : base) x.push_back(t.to(dtype).to(Device::CUDA).detach().set_requires_grad());
    HktAttentionOptions opt;
    opt.causal = p.causal;
    opt.precision = AttentionPrecision::Bf16;
    Tensor y = hkt_attention_fused({x[0], x[1], x[2]}, {x[3], x[4], x[5]}, x[6], x[7], key_mask(p), opt);
    y.backward(g.to(dtype).to(Device::CUDA));
    std::vector<std::vector<double>> out{y.to(Device::CPU).to(DType::Float64).to_vector()};
    for (const auto& t : x) out.push_back(t.grad().to(Device::CPU).to(DType::Float64).to_vector());
    return out;
  };
  const auto as_vectors = [](const std::vector<Tensor>& ts) {
    std::vector<std::vector<double>> out;
    for (const auto& t : ts) out.push_back(t.to_vector());
    return out;
  };
  std::vector<std::vector<double>> v2;
  {
    const KernelVersion version(2);
    v2 = as_vectors(run(p, base, g, true, Device::CUDA, DType::Float32));
  }
  CHECK(with_precision(DType::Float32) == v2);
  CHECK(with_precision(DType::Float64) == as_vectors(run(p, base, g, true, Device::CUDA, DType::Float64)));  // v1
}
