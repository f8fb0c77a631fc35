// test_optim.cpp: AdamW, learning-rate schedules and gradient clipping (engine/optim),
// docs/engine.md conventions 7, 8 and 9.
//
// Reference values: tests/data/optim/adamw_reference.json, written by
// tools/make_optim_references.py (torch.optim.AdamW and clip_grad_norm_ in float64;
// regenerate with /usr/bin/python3 that script). Everything else is computed by hand in
// the comments next to the numbers.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"
#include "test_helpers.h"

namespace {

using hkt::DType;
using hkt::Shape;
using hkt::Tensor;
using hkt::optim::AdamW;
using hkt::optim::AdamWConfig;
using hkt::optim::ScheduleConfig;
using hkt::test::require_close;
using hkt::test::require_error;
using nlohmann::json;

using Named = std::vector<std::pair<std::string, Tensor>>;

// ---- helpers ----------------------------------------------------------------------------

/// A parameter (leaf, requires_grad) with the given values.
Tensor param(const std::vector<double>& values, const Shape& shape, DType dtype = DType::Float64) {
  Tensor p = Tensor::from_vector(values, shape, dtype);
  p.set_requires_grad(true);
  return p;
}

/// Gives p the gradient `g` exactly, through the engine's own backward: d sum(p * g) / dp = g.
void give_grad(Tensor& p, const std::vector<double>& g) {
  p.zero_grad();
  hkt::sum(hkt::mul(p, Tensor::from_vector(g, p.shape(), p.dtype()))).backward();
}

/// Bitwise comparison of two tensors' values.
bool identical(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

json load_reference() {
  const std::string path = hkt::test::fixture_dir() + "/optim/adamw_reference.json";
  std::ifstream in(path);
  REQUIRE(in.good());
  json doc = json::parse(in);
  REQUIRE(doc.at("format") == "hkt-optim-references");
  REQUIRE(doc.at("version") == 1);
  return doc;
}

Shape shape_of(const json& j) { return j.get<Shape>(); }

ScheduleConfig schedule_of(const json& j) {
  ScheduleConfig s;
  s.kind = j.at("kind").get<std::string>();
  s.base_lr = j.at("base_lr").get<double>();
  s.warmup_steps = j.at("warmup_steps").get<std::int64_t>();
  s.total_steps = j.at("total_steps").get<std::int64_t>();
  s.min_lr = j.at("min_lr").get<double>();
  return s;
}

/// Runs the reference AdamW trajectory in `dtype` and compares every parameter after
/// every step, then the final moments, with `tol`.
void check_adamw_reference(DType dtype, const hkt::test::Tolerance& tol) {
  const json ref = load_reference().at("adamw");
  const json& cfg = ref.at("config");
  AdamWConfig config;
  config.beta1 = cfg.at("beta1");
  config.beta2 = cfg.at("beta2");
  config.eps = cfg.at("eps");
  config.weight_decay = cfg.at("weight_decay");
  const ScheduleConfig schedule = schedule_of(ref.at("schedule"));

  Named named;
  for (const json& p : ref.at("parameters"))
    named.emplace_back(p.at("name"), param(p.at("initial"), shape_of(p.at("shape")), dtype));
  AdamW opt(named, config);
  for (std::size_t i = 0; i < named.size(); ++i) {
    INFO("parameter " << named[i].first);
    CHECK(opt.decays(named[i].first) == ref.at("parameters")[i].at("decays").get<bool>());
  }

  const int steps = ref.at("steps");
  for (int step = 1; step <= steps; ++step) {
    INFO("step " << step);
    const double lr = hkt::optim::learning_rate(schedule, step);
    CHECK(std::fabs(lr - ref.at("lrs")[step - 1].get<double>()) <= hkt::test::kFloat64Exact.atol);
    opt.zero_grad();
    for (std::size_t i = 0; i < named.size(); ++i) {
      const json& g = ref.at("parameters")[i].at("grads")[step - 1];
      if (!g.is_null()) give_grad(named[i].second, g);
    }
    opt.step(lr);
    CHECK(opt.step_count() == step);
    for (std::size_t i = 0; i < named.size(); ++i) {
      INFO("parameter " << named[i].first);
      require_close(named[i].second, ref.at("parameters")[i].at("after")[step - 1], tol);
    }
  }

  // The moments after the last step equal PyTorch's optimizer state.
  const Named state = opt.state();
  for (std::size_t i = 0; i < named.size(); ++i) {
    const json& p = ref.at("parameters")[i];
    INFO("parameter " << named[i].first);
    REQUIRE(state[2 * i].first == named[i].first + ".exp_avg");
    REQUIRE(state[2 * i + 1].first == named[i].first + ".exp_avg_sq");
    if (p.at("exp_avg").is_null()) {  // never had a gradient: untouched, moments still 0
      CHECK(identical(named[i].second, Tensor::from_vector(p.at("initial"), shape_of(p.at("shape")), dtype)));
      require_close(state[2 * i].second, std::vector<double>(state[2 * i].second.numel(), 0.0));
      require_close(state[2 * i + 1].second, std::vector<double>(state[2 * i].second.numel(), 0.0));
    } else {
      require_close(state[2 * i].second, p.at("exp_avg"), tol);
      require_close(state[2 * i + 1].second, p.at("exp_avg_sq"), tol);
    }
  }
  CHECK(state.back().first == "step");
  CHECK(state.back().second.item() == steps);
}

/// Runs the reference clip cases in `dtype` with `tol`.
void check_clip_reference(DType dtype, const hkt::test::Tolerance& tol) {
  const json reference = load_reference();  // named: a range-for over a member of a temporary dangles
  for (const json& c : reference.at("clip")) {
    const double max_norm = c.at("max_norm");
    INFO("max_norm " << max_norm);
    std::vector<Tensor> params;
    for (const json& g : c.at("grads")) {
      params.push_back(
          param(std::vector<double>(hkt::numel(shape_of(g.at("shape"))), 0.0), shape_of(g.at("shape")), dtype));
      give_grad(params.back(), g.at("values"));
    }
    const double norm = hkt::optim::clip_grad_norm(params, max_norm);
    const double expected = c.at("total_norm");
    CHECK(std::fabs(norm - expected) <= tol.atol + tol.rtol * expected);
    for (std::size_t i = 0; i < params.size(); ++i) require_close(params[i].grad(), c.at("clipped")[i], tol);
  }
}

}  // namespace

// ---- AdamW -----------------------------------------------------------------------------------

TEST_CASE("optim: adamw matches pytorch in float64", "[optim]") {
  // 5 steps of torch.optim.AdamW with a warmup-cosine lr; decay only on the matrix "w".
  check_adamw_reference(DType::Float64, hkt::test::kFloat64Exact);
}

TEST_CASE("optim: adamw matches pytorch in float32", "[optim]") {
  check_adamw_reference(DType::Float32, hkt::test::kFloat32VsFloat64);
}

TEST_CASE("optim: adamw two steps by hand", "[optim]") {
  // p = [[2]] (a matrix: decays), lr 0.1, wd 0.01, betas (0.9, 0.999), eps 1e-8.
  // Step 1, g = 0.5: p = 2 (1 - 0.001) = 1.998; m = 0.05, v = 0.00025; m_hat = 0.5,
  //   v_hat = 0.25; p = 1.998 - 0.1 * 0.5 / (0.5 + 1e-8) = 1.998 - 0.099999998 = 1.898000002.
  // Step 2, g = -1: p = 1.898000002 * 0.999 = 1.896101999998; m = 0.045 - 0.1 = -0.055,
  //   v = 0.00024975 + 0.001 = 0.00124975; m_hat = -0.055 / 0.19 = -0.28947368421052632,
  //   v_hat = 0.00124975 / 0.001999 = 0.62518759379689845, sqrt = 0.79068804...;
  //   p = 1.896101999998 + 0.1 * 0.36610323624... = 1.9327123542385654.
  AdamWConfig config;
  config.weight_decay = 0.01;
  Tensor p = param({2.0}, {1, 1});
  AdamW opt({{"w", p}}, config);
  give_grad(p, {0.5});
  opt.step(0.1);
  require_close(p, {1.898000002});
  give_grad(p, {-1.0});
  opt.step(0.1);
  require_close(p, {1.9327123542385654});
  const Named state = opt.state();
  require_close(state[0].second, {-0.055});
  require_close(state[1].second, {0.00124975});
}

TEST_CASE("optim: adamw weight decay only where convention 7 says", "[optim]") {
  // The same gradient and lr on two [1,1] matrices, one named as downsampler taps: the
  // decayed one ends lower by exactly the decay factor's effect, p lr wd = 2 * 0.1 * 0.5.
  AdamWConfig config;
  config.weight_decay = 0.5;
  Tensor w = param({2.0}, {1, 1});
  Tensor taps = param({2.0}, {1, 1});
  AdamW opt({{"w", w}, {"attn.downsample.0.weight", taps}}, config);
  give_grad(w, {1.0});
  give_grad(taps, {1.0});
  opt.step(0.1);
  // Adam step 1: m_hat / (sqrt(v_hat) + eps) = 1 / (1 + 1e-8); undecayed: 2 - 0.1 / (1 + 1e-8)
  require_close(taps, {2.0 - 0.1 / (1.0 + 1e-8)});
  // decayed: 2 (1 - 0.05) - 0.1 / (1 + 1e-8)
  require_close(w, {1.9 - 0.1 / (1.0 + 1e-8)});
}

TEST_CASE("optim: adamw decays follows the naming rule", "[optim]") {
  Named named = {
      {"embed.weight", param(std::vector<double>(8, 0.1), {4, 2})},                          // matrix: decays
      {"blocks.0.attn.w_q.weight", param(std::vector<double>(4, 0.1), {2, 2})},              // matrix: decays
      {"blocks.0.attn.w_q.bias", param(std::vector<double>(2, 0.1), {2})},                   // bias: no
      {"blocks.0.ln1.weight", param(std::vector<double>(2, 1.0), {2})},                      // LayerNorm: no
      {"blocks.0.ln1.bias", param(std::vector<double>(2, 0.0), {2})},                        // LayerNorm: no
      {"blocks.0.attn.level_logits", param(std::vector<double>(6, 0.0), {2, 3})},            // rank 2 but named: no
      {"level_logits", param(std::vector<double>(3, 0.0), {3})},                             // per-layer logits: no
      {"blocks.0.attn.downsample.1.weight", param(std::vector<double>(4, 0.5), {2, 2})},     // depthwise taps: no
      {"blocks.0.attn.downsample.2.weight", param(std::vector<double>(8, 0.5), {2, 2, 2})},  // dense taps: no
      {"blocks.0.attn.downsample.1.bias", param(std::vector<double>(2, 0.0), {2})},          // bias: no
      {"scale", param({1.0}, {})},                                                           // scalar: no
      {"blocks.0.mlp.fc.weight", param(std::vector<double>(8, 0.1), {2, 2, 2})},             // rank 3: decays
  };
  AdamW opt(named, AdamWConfig{});
  CHECK(opt.decays("embed.weight"));
  CHECK(opt.decays("blocks.0.attn.w_q.weight"));
  CHECK_FALSE(opt.decays("blocks.0.attn.w_q.bias"));
  CHECK_FALSE(opt.decays("blocks.0.ln1.weight"));
  CHECK_FALSE(opt.decays("blocks.0.ln1.bias"));
  CHECK_FALSE(opt.decays("blocks.0.attn.level_logits"));
  CHECK_FALSE(opt.decays("level_logits"));
  CHECK_FALSE(opt.decays("blocks.0.attn.downsample.1.weight"));
  CHECK_FALSE(opt.decays("blocks.0.attn.downsample.2.weight"));
  CHECK_FALSE(opt.decays("blocks.0.attn.downsample.1.bias"));
  CHECK_FALSE(opt.decays("scale"));
  CHECK(opt.decays("blocks.0.mlp.fc.weight"));
  require_error([&] { opt.decays("no.such.weight"); }, "AdamW: no parameter named 'no.such.weight'");
}

TEST_CASE("optim: adamw leaves a parameter without gradient untouched", "[optim]") {
  Tensor a = param({1.0, -2.0, 3.0, 0.25}, {2, 2});
  Tensor b = param({0.5, 0.75}, {2});
  AdamW opt({{"a", a}, {"b", b}}, AdamWConfig{});
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    give_grad(a, {0.1, 0.2, -0.3, 0.4});
    opt.step(0.01);
  }
  CHECK(b.to_vector() == std::vector<double>{0.5, 0.75});  // bitwise: never touched
  const Named state = opt.state();
  CHECK(state[2].first == "b.exp_avg");
  CHECK(state[2].second.to_vector() == std::vector<double>{0.0, 0.0});
  CHECK(state[3].second.to_vector() == std::vector<double>{0.0, 0.0});
  CHECK(a.to_vector() != std::vector<double>{1.0, -2.0, 3.0, 0.25});  // and the other moved
  CHECK(opt.step_count() == 3);
}

TEST_CASE("optim: adamw zero_grad clears every gradient", "[optim]") {
  Tensor a = param({1.0, 2.0}, {2});
  Tensor b = param({3.0, 4.0}, {1, 2});
  AdamW opt({{"a", a}, {"b", b}}, AdamWConfig{});
  give_grad(a, {1.0, 1.0});
  give_grad(b, {1.0, 1.0});
  opt.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  opt.step(0.1);  // no gradients: nothing moves, the count still advances
  CHECK(a.to_vector() == std::vector<double>{1.0, 2.0});
  CHECK(b.to_vector() == std::vector<double>{3.0, 4.0});
  CHECK(opt.step_count() == 1);
}

TEST_CASE("optim: adamw state round trip continues bit identically", "[optim]") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    INFO("dtype " << hkt::dtype_name(dtype));
    const std::vector<double> w0{0.3, -0.7, 1.1, 0.2, -0.4, 0.9};
    const std::vector<double> b0{0.05, -0.02};
    auto grads = [](int step) {
      const double s = step;
      return std::pair{std::vector<double>{0.1 * s, -0.2, 0.3, -0.4 / s, 0.5, -0.6 * s},
                       std::vector<double>{0.7 / s, -0.8}};
    };
    AdamWConfig config;
    config.weight_decay = 0.1;
    Tensor wa = param(w0, {2, 3}, dtype), ba = param(b0, {2}, dtype);
    AdamW a({{"w", wa}, {"b", ba}}, config);
    for (int step = 1; step <= 3; ++step) {
      give_grad(wa, grads(step).first);
      give_grad(ba, grads(step).second);
      a.step(0.01 * step);
    }
    const Named saved = a.state();

    // A fresh optimizer over copies of the current values, restored from the state.
    Tensor wb = param(wa.to_vector(), {2, 3}, dtype), bb = param(ba.to_vector(), {2}, dtype);
    AdamW b({{"w", wb}, {"b", bb}}, config);
    b.load_state(saved);
    CHECK(b.step_count() == 3);
    for (int step = 4; step <= 5; ++step) {
      give_grad(wa, grads(step).first);
      give_grad(ba, grads(step).second);
      give_grad(wb, grads(step).first);
      give_grad(bb, grads(step).second);
      a.step(0.01 * step);
      b.step(0.01 * step);
    }
    CHECK(identical(wa, wb));
    CHECK(identical(ba, bb));
    const Named sa = a.state(), sb = b.state();
    REQUIRE(sa.size() == sb.size());
    for (std::size_t i = 0; i < sa.size(); ++i) {
      CHECK(sa[i].first == sb[i].first);
      CHECK(identical(sa[i].second, sb[i].second));
    }
    // state() returns copies: the saved tensors still hold the step-3 state.
    CHECK(saved.back().second.item() == 3);
    CHECK_FALSE(identical(saved[0].second, sa[0].second));
  }
}

TEST_CASE("optim: a float32 gradient whose square overflows leaves +inf in exp_avg_sq, and that state loads",
          "[optim][reliability]") {
  // g = 1e22 is a finite float32, (1 - beta2) g^2 = 1e41 is not: v = inf, so the
  // element's Adam update m_hat / (sqrt(v_hat) + eps) is 0 (as in PyTorch) and only the
  // weight decay moves it: w = 2 (1 - lr wd) = 2 (1 - 0.1 * 0.01). The state (a checkpoint's
  // optimizer entries) must load again.
  AdamWConfig config;
  config.weight_decay = 0.01;
  Tensor w = param({2.0, 3.0}, {1, 2}, DType::Float32);  // a matrix: weight decay applies
  AdamW opt({{"w", w}}, config);
  give_grad(w, {1e22, 0.5});
  opt.step(0.1);
  const Named state = opt.state();
  std::vector<double> v;
  for (const auto& [name, t] : state)
    if (name == "w.exp_avg_sq") v = t.to_vector();
  REQUIRE(v.size() == 2);
  CHECK(v[0] == HUGE_VAL);
  CHECK(std::isfinite(v[1]));
  CHECK(w.to_vector()[0] == static_cast<double>(2.0f * static_cast<float>(1.0 - 0.1 * 0.01)));
  Tensor w2 = param(w.to_vector(), {1, 2}, DType::Float32);
  AdamW restored({{"w", w2}}, config);
  restored.load_state(state);
  CHECK(restored.step_count() == 1);
}

TEST_CASE("optim: adamw load_state rejects mismatched state", "[optim]") {
  auto make = [] { return std::pair{param({1.0, 2.0, 3.0, 4.0}, {2, 2}), param({0.5, 0.5}, {2})}; };
  auto [w, b] = make();
  AdamW opt({{"w", w}, {"b", b}}, AdamWConfig{});
  const Named good = opt.state();  // w.exp_avg, w.exp_avg_sq, b.exp_avg, b.exp_avg_sq, step
  auto without = [&](const std::string& key) {
    Named s;
    for (auto& e : good)
      if (e.first != key) s.push_back(e);
    return s;
  };
  auto replaced = [&](const std::string& key, Tensor t) {
    Named s = good;
    for (auto& e : s)
      if (e.first == key) e.second = t;
    return s;
  };

  require_error([&] { opt.load_state(without("b.exp_avg_sq")); }, "AdamW.load_state: missing entries: b.exp_avg_sq");
  require_error([&] { opt.load_state(without("step")); }, "missing entries: step");
  Named extra = good;
  extra.emplace_back("c.exp_avg", Tensor::zeros({2}, DType::Float64));
  require_error([&] { opt.load_state(extra); }, "unexpected entries (no such parameter): c.exp_avg");
  Named twice = good;
  twice.push_back(good[0]);
  require_error([&] { opt.load_state(twice); }, "entry 'w.exp_avg' is given twice");
  require_error([&] { opt.load_state(replaced("w.exp_avg", Tensor::zeros({4}, DType::Float64))); },
                "entry 'w.exp_avg' has shape [4], the parameter [2,2]");
  require_error([&] { opt.load_state(replaced("b.exp_avg", Tensor::zeros({2}, DType::Float32))); },
                "entry 'b.exp_avg' has dtype float32, the parameter float64");
  require_error([&] { opt.load_state(replaced("step", Tensor::scalar(3.0, DType::Float64))); },
                "entry 'step' must be an int64 scalar (shape []), got float64 []");
  require_error([&] { opt.load_state(replaced("step", Tensor::from_indices({3}, {1}))); },
                "entry 'step' must be an int64 scalar (shape []), got int64 [1]");
  require_error([&] { opt.load_state(replaced("step", Tensor::from_indices({-1}, {}))); },
                "entry 'step' is negative (-1)");
  require_error(
      [&] {
        opt.load_state(replaced("w.exp_avg_sq", hkt::test::f64({0.0, 1.0, -2.0, 0.0}, {2, 2})));
      },
      "entry 'w.exp_avg_sq': element 2 is negative (-2)");
  require_error(
      [&] {
        opt.load_state(replaced("b.exp_avg", hkt::test::f64({0.0, std::nan("")}, {2})));
      },
      "entry 'b.exp_avg': element 1 is nan");
  // exp_avg_sq may be +inf (AdamW writes it when a finite gradient's square overflows),
  // never -inf or NaN; exp_avg never infinite.
  require_error(
      [&] {
        opt.load_state(replaced("b.exp_avg", hkt::test::f64({0.0, HUGE_VAL}, {2})));
      },
      "entry 'b.exp_avg': element 1 is inf");
  require_error(
      [&] {
        opt.load_state(replaced("b.exp_avg_sq", hkt::test::f64({0.0, std::nan("")}, {2})));
      },
      "entry 'b.exp_avg_sq': element 1 is nan");
  require_error([&] { opt.load_state(replaced("w.exp_avg", Tensor())); }, "entry 'w.exp_avg' is undefined");

  // A failed load changes nothing: a bad "step" listed with good moments leaves the count.
  Named bad = replaced("w.exp_avg", hkt::test::f64({9.0, 9.0, 9.0, 9.0}, {2, 2}));
  bad = [&] {
    Named s = bad;
    for (auto& e : s)
      if (e.first == "step") e.second = Tensor::from_indices({-5}, {});
    return s;
  }();
  require_error([&] { opt.load_state(bad); }, "entry 'step' is negative");
  CHECK(opt.step_count() == 0);
  CHECK(opt.state()[0].second.to_vector() == std::vector<double>{0.0, 0.0, 0.0, 0.0});
}

TEST_CASE("optim: adamw config and parameter errors", "[optim]") {
  auto one = [] { return Named{{"w", param({1.0, 2.0}, {1, 2})}}; };
  auto with = [](auto set) {
    AdamWConfig c;
    set(c);
    return c;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.lr = -1e-3; })); },
                "AdamW: lr must be finite and >= 0, got -0.001");
  require_error([&] { AdamW(one(), with([&](AdamWConfig& c) { c.lr = inf; })); },
                "AdamW: lr must be finite and >= 0, got inf");
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.beta1 = 1.0; })); },
                "AdamW: beta1 must be in [0, 1), got 1");
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.beta1 = -0.1; })); },
                "AdamW: beta1 must be in [0, 1), got -0.1");
  require_error([&] { AdamW(one(), with([&](AdamWConfig& c) { c.beta2 = nan; })); },
                "AdamW: beta2 must be in [0, 1), got nan");
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.beta2 = 1.5; })); },
                "AdamW: beta2 must be in [0, 1), got 1.5");
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.eps = 0.0; })); },
                "AdamW: eps must be finite and > 0, got 0");
  require_error([&] { AdamW(one(), with([](AdamWConfig& c) { c.weight_decay = -0.01; })); },
                "AdamW: weight_decay must be finite and >= 0, got -0.01");

  Tensor p = param({1.0}, {1});
  require_error(
      [&] {
        AdamW({{"a", p}, {"a", param({1.0}, {1})}}, AdamWConfig{});
      },
      "AdamW: parameter 'a' is listed twice");
  require_error(
      [&] {
        AdamW({{"a", p}, {"b", p}}, AdamWConfig{});
      },
      "AdamW: parameter 'b' is the same tensor as parameter 'a'");
  require_error([&] { AdamW({{"", param({1.0}, {1})}}, AdamWConfig{}); }, "AdamW: a parameter has an empty name");
  require_error([&] { AdamW({{"u", Tensor()}}, AdamWConfig{}); }, "AdamW: parameter 'u' is undefined");
  require_error(
      [&] {
        AdamW({{"i", Tensor::from_indices({1, 2}, {2})}}, AdamWConfig{});
      },
      "AdamW: parameter 'i' has dtype int64; expected float32 or float64");
  require_error(
      [&] {
        AdamW({{"c", Tensor::ones({2}, DType::Float64)}}, AdamWConfig{});
      },
      "AdamW: parameter 'c' does not require grad");
  Tensor non_leaf = hkt::mul(p, 2.0);
  require_error([&] { AdamW({{"n", non_leaf}}, AdamWConfig{}); }, "AdamW: parameter 'n' is not a leaf");

  Named named = one();
  AdamW opt(named, AdamWConfig{});
  require_error([&] { opt.step(-0.1); }, "AdamW.step: lr must be finite and >= 0, got -0.1");
  require_error([&] { opt.step(nan); }, "AdamW.step: lr must be finite and >= 0, got nan");
  named[0].second.impl()->grad = Tensor::zeros({2}, DType::Float64);  // wrong shape, set by hand
  require_error([&] { opt.step(0.1); }, "AdamW: parameter 'w': gradient has shape [2], the parameter [1,2]");
  named[0].second.impl()->grad = Tensor::zeros({1, 2}, DType::Float32);
  require_error([&] { opt.step(0.1); }, "AdamW: parameter 'w': gradient has dtype float32, the parameter float64");
  CHECK(opt.step_count() == 0);  // the failed steps changed nothing
  CHECK(named[0].second.to_vector() == std::vector<double>{1.0, 2.0});
}

// ---- learning-rate schedules -----------------------------------------------------------------

namespace {
ScheduleConfig schedule(const std::string& kind, double base, std::int64_t warmup, std::int64_t total = 0,
                        double min_lr = 0.0) {
  ScheduleConfig c;
  c.kind = kind;
  c.base_lr = base;
  c.warmup_steps = warmup;
  c.total_steps = total;
  c.min_lr = min_lr;
  return c;
}
}  // namespace

TEST_CASE("optim: learning_rate by hand for each kind", "[optim]") {
  using hkt::optim::learning_rate;
  const double tol = 1e-15;
  // constant, base 0.1, warmup 4: 0.1 * 1/4, then 0.1
  const auto constant = schedule("constant", 0.1, 4);
  CHECK(std::fabs(learning_rate(constant, 1) - 0.025) < tol);
  CHECK(std::fabs(learning_rate(constant, 2) - 0.05) < tol);
  CHECK(std::fabs(learning_rate(constant, 4) - 0.1) < tol);
  CHECK(std::fabs(learning_rate(constant, 5) - 0.1) < tol);
  CHECK(std::fabs(learning_rate(constant, 1000) - 0.1) < tol);
  CHECK(learning_rate(schedule("constant", 0.1, 0), 1) == 0.1);  // no warmup: base from step 1

  // cosine, base 0.1, warmup 4, total 12, min 0.01: after warmup
  // 0.01 + 0.045 (1 + cos(pi (step - 4) / 8))
  const auto cosine = schedule("cosine", 0.1, 4, 12, 0.01);
  CHECK(std::fabs(learning_rate(cosine, 1) - 0.025) < tol);
  CHECK(std::fabs(learning_rate(cosine, 4) - 0.1) < tol);
  CHECK(std::fabs(learning_rate(cosine, 5) - 0.09657457896300791) < tol);  // cos(pi/8) = 0.92387953251128674
  CHECK(std::fabs(learning_rate(cosine, 8) - 0.055) < tol);                // cos(pi/2) = 0
  CHECK(std::fabs(learning_rate(cosine, 12) - 0.01) < tol);                // cos(pi) = -1: min_lr
  CHECK(std::fabs(learning_rate(cosine, 13) - 0.01) < tol);                // held after total_steps
  // no warmup, total 4: step 1 is already 1/4 of the way down, 0.05 (1 + cos(pi/4)) = 0.05 + 0.035355339059327376
  CHECK(std::fabs(learning_rate(schedule("cosine", 0.1, 0, 4), 1) - 0.085355339059327376) < tol);

  // inverse_sqrt, base 0.1, warmup 4: 0.1 sqrt(4 / step) after warmup
  const auto inv = schedule("inverse_sqrt", 0.1, 4);
  CHECK(std::fabs(learning_rate(inv, 1) - 0.025) < tol);
  CHECK(std::fabs(learning_rate(inv, 4) - 0.1) < tol);
  CHECK(std::fabs(learning_rate(inv, 5) - 0.08944271909999159) < tol);  // 0.1 * sqrt(0.8)
  CHECK(std::fabs(learning_rate(inv, 16) - 0.05) < tol);                // 0.1 * sqrt(1/4)
  CHECK(std::fabs(learning_rate(inv, 400) - 0.01) < tol);               // 0.1 * sqrt(1/100)
}

TEST_CASE("optim: learning_rate first step is never zero", "[optim]") {
  // Convention 8: steps count from 1, so warmup's first rate is base / warmup > 0.
  for (std::int64_t warmup : {1, 2, 3, 10, 1000, 100000}) {
    INFO("warmup " << warmup);
    const double expected = 0.001 / static_cast<double>(warmup);
    CHECK(hkt::optim::learning_rate(schedule("constant", 1e-3, warmup), 1) == Approx(expected).epsilon(1e-15));
    CHECK(hkt::optim::learning_rate(schedule("cosine", 1e-3, warmup, warmup + 10), 1) ==
          Approx(expected).epsilon(1e-15));
    CHECK(hkt::optim::learning_rate(schedule("inverse_sqrt", 1e-3, warmup), 1) == Approx(expected).epsilon(1e-15));
  }
}

TEST_CASE("optim: schedule config errors", "[optim]") {
  using hkt::optim::learning_rate;
  require_error([] { learning_rate(schedule("linear", 0.1, 0), 1); },
                "schedule: unknown kind 'linear' (known: constant, cosine, inverse_sqrt)");
  require_error([] { learning_rate(schedule("constant", 0.0, 0), 1); }, "base_lr must be finite and > 0, got 0");
  require_error([] { learning_rate(schedule("constant", -0.1, 0), 1); }, "base_lr must be finite and > 0, got -0.1");
  require_error([] { learning_rate(schedule("constant", std::nan(""), 0), 1); },
                "base_lr must be finite and > 0, got nan");
  require_error([] { learning_rate(schedule("constant", 0.1, -1), 1); }, "warmup_steps must be >= 0, got -1");
  require_error([] { learning_rate(schedule("constant", 0.1, 0, -5), 1); }, "total_steps must be >= 0, got -5");
  require_error([] { learning_rate(schedule("cosine", 0.1, 0, 10, -0.01), 1); },
                "min_lr must be in [0, base_lr = 0.1], got -0.01");
  require_error([] { learning_rate(schedule("cosine", 0.1, 0, 10, 0.2), 1); },
                "min_lr must be in [0, base_lr = 0.1], got 0.2");
  require_error([] { learning_rate(schedule("cosine", 0.1, 10, 10), 1); },
                "schedule (kind 'cosine'): total_steps (10) must be greater than warmup_steps (10)");
  require_error([] { learning_rate(schedule("cosine", 0.1, 0, 0), 1); },
                "total_steps (0) must be greater than warmup_steps (0)");
  require_error([] { learning_rate(schedule("inverse_sqrt", 0.1, 0), 1); },
                "schedule (kind 'inverse_sqrt'): warmup_steps must be >= 1");
  require_error([] { learning_rate(schedule("constant", 0.1, 4), 0); },
                "learning_rate: step must be >= 1 (steps are counted from 1), got 0");
  require_error([] { learning_rate(schedule("constant", 0.1, 4), -3); }, "step must be >= 1");
  CHECK_NOTHROW(hkt::optim::validate(schedule("cosine", 0.1, 2, 3, 0.1)));  // min_lr = base_lr is allowed
}

// ---- gradient clipping --------------------------------------------------------------------------

TEST_CASE("optim: clip_grad_norm matches pytorch", "[optim]") {
  check_clip_reference(DType::Float64, hkt::test::kFloat64Exact);
  check_clip_reference(DType::Float32, hkt::test::kFloat32VsFloat64);
}

TEST_CASE("optim: clip_grad_norm by hand", "[optim]") {
  using hkt::optim::clip_grad_norm;
  auto setup = [](DType dtype) {
    // gradients [3, 0] and [[4]]: norm sqrt(9 + 16) = 5; a third parameter has none
    std::vector<Tensor> ps{param({0.0, 0.0}, {2}, dtype), param({0.0}, {1, 1}, dtype), param({1.0}, {1}, dtype)};
    give_grad(ps[0], {3.0, 0.0});
    give_grad(ps[1], {4.0});
    return ps;
  };
  for (DType dtype : {DType::Float64, DType::Float32}) {
    INFO("dtype " << hkt::dtype_name(dtype));
    const auto& tol = dtype == DType::Float64 ? hkt::test::kFloat64Exact : hkt::test::kFloat32VsFloat64;
    auto ps = setup(dtype);
    CHECK(clip_grad_norm(ps, 1.0) == Approx(5.0).epsilon(1e-15));
    // scaled by 1 / (5 + 1e-6): 3 / 5.000001 = 0.59999988000002400, 4 / 5.000001 = 0.79999984000003200
    require_close(ps[0].grad(), {0.599999880000024, 0.0}, tol);
    require_close(ps[1].grad(), {0.799999840000032}, tol);
    CHECK_FALSE(ps[2].grad().defined());

    ps = setup(dtype);
    CHECK(clip_grad_norm(ps, 10.0) == 5.0);  // below max_norm: unchanged, bitwise
    CHECK(ps[0].grad().to_vector() == std::vector<double>{3.0, 0.0});
    CHECK(ps[1].grad().to_vector() == std::vector<double>{4.0});

    ps = setup(dtype);
    CHECK(clip_grad_norm(ps, 0.0) == 5.0);  // max_norm 0: no clipping, norm still returned
    CHECK(ps[1].grad().to_vector() == std::vector<double>{4.0});

    ps = setup(dtype);
    CHECK(clip_grad_norm(ps, 5.0) == 5.0);  // PyTorch's min(1, 5 / (5 + 1e-6)) still scales
    require_close(ps[1].grad(), {4.0 * 5.0 / 5.000001}, tol);
  }
  CHECK(clip_grad_norm({param({1.0}, {1})}, 1.0) == 0.0);  // no gradients at all
  CHECK(clip_grad_norm({}, 1.0) == 0.0);
}

TEST_CASE("optim: clip_grad_norm stops on a non-finite gradient", "[optim]") {
  using hkt::optim::clip_grad_norm;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::Float64, DType::Float32}) {
    INFO("dtype " << hkt::dtype_name(dtype));
    std::vector<Tensor> ps{param({0.0, 0.0}, {2}, dtype), param({1.0}, {1}, dtype),
                           param(std::vector<double>(16, 0.0), {4, 4}, dtype)};
    give_grad(ps[0], {1.0, 2.0});
    std::vector<double> g(16, 0.5);
    g[5] = nan;
    g[9] = inf;
    give_grad(ps[2], g);
    // parameter 1 has no gradient; the first non-finite value is parameter 2's element 5
    require_error([&] { clip_grad_norm(ps, 1.0); },
                  "clip_grad_norm: gradient of parameter 2 (shape [4,4]) is not finite: element 5 is nan");
    require_error([&] { clip_grad_norm(ps, 0.0); },
                  "gradient of parameter 2 (shape [4,4]) is not finite");  // checked even unclipped
    CHECK(ps[0].grad().to_vector() == std::vector<double>{1.0, 2.0});      // nothing was scaled
    g[5] = 0.5;
    give_grad(ps[2], g);
    require_error([&] { clip_grad_norm(ps, 1.0); },
                  "gradient of parameter 2 (shape [4,4]) is not finite: element 9 is inf");
    g[9] = -inf;
    give_grad(ps[2], g);
    require_error([&] { clip_grad_norm(ps, 1.0); }, "element 9 is -inf");
  }
  // Finite float64 values whose squares overflow: the norm is inf, and the message says why.
  std::vector<Tensor> big{param({0.0, 0.0}, {2})};
  give_grad(big[0], {1e200, -1e200});
  require_error([&] { clip_grad_norm(big, 1.0); },
                "every gradient value is finite but the sum of squares overflows float64");
  require_error([&] { clip_grad_norm(big, std::nan("")); }, "clip_grad_norm: max_norm is nan");
  require_error([&] { clip_grad_norm({Tensor()}, 1.0); }, "clip_grad_norm: parameter 0 is undefined");
  Tensor p = param({0.0, 0.0}, {2});
  p.impl()->grad = Tensor::zeros({3}, DType::Float64);  // a wrong-shaped gradient, set by hand
  require_error([&] { clip_grad_norm({p}, 1.0); },
                "gradient of parameter 0 (shape [3]) does not match the parameter's shape [2]");
}
