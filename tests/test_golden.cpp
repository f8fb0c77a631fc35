// test_golden.cpp: the classifier against golden files written by PyTorch (test ladder
// step 4 of docs/engine.md).
//
// tests/data/golden/<model>.{safetensors,json} come from tools/make_golden.py (plain torch
// float64, written from docs/hkt-attention.md; regenerate with
// `/usr/bin/python3 tools/make_golden.py`). Models: "mha", "hkt_scores" (3 levels,
// "scores" fusion, per-head weights, depthwise k = 2), "hkt_outputs" (2 levels, "outputs"
// fusion, per-layer weights, dense k = 2) and "mha_cls" (CLS pooling); vocab 13, d 8,
// 2 heads, 2 layers, d_ff 16, max_len 16, 3 classes, one batch of 4 sequences of lengths
// 7, 11, 1, 4 (T = 11).
//
// Checked: logits, mean cross-entropy loss and the gradient of every parameter in float64
// (both attention implementations, fused and composite); the losses of 5 AdamW steps; the
// float32 model (weights rounded) against the float64 logits and loss; save -> load ->
// bit-identical logits.
//
// Error measure (ggml's, docs/engine.md): for a tensor, max |actual - expected| / max |expected|,
// i.e. the error relative to the tensor's magnitude, so that elements near 0 (a gradient
// that nearly cancels) are not held to a relative bound they cannot meet. For float64 it
// must be within kFloat64Exact.rtol (1e-12): PyTorch and hkt compute the same float64
// values with different summation orders (measured: logits <= 7e-16, gradients <= 8e-15
// against unrounded PyTorch values). The gradients in the files are rounded at the 14th
// significant digit of each tensor's largest element (<= 5e-14 in this measure).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "classifier.h"
#include "io/safetensors.h"
#include "optim/adamw.h"
#include "test_helpers.h"
#include "config.h"

namespace {

using hkt::Classifier;
using hkt::ClassifierConfig;
using hkt::DType;
using hkt::Generator;
using hkt::Shape;
using hkt::Tensor;
using nlohmann::json;

const std::vector<std::string> kModels = {"mha", "hkt_scores", "hkt_outputs", "mha_cls"};

std::string golden_path(const std::string& model, const std::string& ext) {
  return hkt::test::fixture_dir() + "/golden/" + model + ext;
}

json load_golden(const std::string& model) {
  const std::string path = golden_path(model, ".json");
  std::ifstream in(path);
  INFO("golden file " << path);
  REQUIRE(in.good());
  json doc = json::parse(in);
  REQUIRE(doc.at("format") == "hkt-golden");
  REQUIRE(doc.at("version") == 1);
  REQUIRE(doc.at("model") == model);
  return doc;
}

// The golden file's flat "config" object, nested as a training config's "model" section
// and read by the trainer's own reader (config::model_config).
ClassifierConfig config_of(const json& c) {
  json model = c, hkt = {{"fixed_weights", json::array()}, {"impl", "fused"}};
  for (const char* key : {"levels", "fusion", "level_weights", "downsampler", "kernel_size", "causal"}) {
    hkt[key] = c.at(key);
    model.erase(key);
  }
  model["hkt"] = hkt;
  model["attention_precision"] = "fp32";
  return hkt::config::model_config({{"model", model}}, c.at("vocab_size").get<std::int64_t>(), 0,
                                   c.at("num_classes").get<std::int64_t>(), c.at("max_len").get<std::int64_t>());
}

/// The fixed batch of the file: int64 tokens [B, T], mask [B, T], labels [B].
struct Batch {
  Tensor tokens, mask, labels;
};

Batch batch_of(const json& b) {
  const auto tokens = b.at("tokens").get<std::vector<std::vector<std::int64_t>>>();
  const auto mask = b.at("mask").get<std::vector<std::vector<std::int64_t>>>();
  const auto labels = b.at("labels").get<std::vector<std::int64_t>>();
  const auto B = static_cast<std::int64_t>(tokens.size()), T = static_cast<std::int64_t>(tokens.at(0).size());
  std::vector<std::int64_t> t, m;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    t.insert(t.end(), tokens[i].begin(), tokens[i].end());
    m.insert(m.end(), mask.at(i).begin(), mask.at(i).end());
  }
  return {Tensor::from_indices(t, {B, T}), Tensor::from_indices(m, {B, T}), Tensor::from_indices(labels, {B})};
}

/// A model of the file's config in `dtype` (random weights from `seed`; the test loads
/// the file's weights over them).
std::unique_ptr<Classifier> make_model(const json& doc, DType dtype, std::uint64_t seed,
                                       hkt::AttentionImpl impl = hkt::AttentionImpl::Fused) {
  ClassifierConfig config = config_of(doc.at("config"));
  config.impl = impl;
  Generator gen(seed);
  return std::make_unique<Classifier>(config, gen, dtype);
}

/// Loads the golden weights (float64 in the file) into `model`, rounded to its dtype.
void load_weights(const Classifier& model, const std::string& name) {
  hkt::safetensors::File file = hkt::safetensors::load(golden_path(name, ".safetensors"));
  for (auto& [n, t] : file.tensors) t = t.to(model.dtype());
  hkt::safetensors::load_into(file, model.named_parameters());
}

Tensor logits_of(const Classifier& model, const Batch& batch) {
  Generator unused(0);  // dropout is 0 and off
  return model.forward(batch.tokens, Tensor(), batch.mask, false, unused);
}

/// max |a - e| / max |e| (plain |a - e| when e is all zeros).
double rel_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    diff = std::max(diff, std::fabs(actual[i] - expected[i]));
    scale = std::max(scale, std::fabs(expected[i]));
    if (std::isnan(actual[i])) diff = INFINITY;
  }
  return scale > 0 ? diff / scale : diff;
}

std::vector<double> values_of(const json& j) { return j.at("values").get<std::vector<double>>(); }

/// Logits, loss and every gradient of the float64 model against the file.
void check_float64(const std::string& name, hkt::AttentionImpl impl) {
  const json doc = load_golden(name);
  const Batch batch = batch_of(doc.at("batch"));
  auto model = make_model(doc, DType::Float64, 7, impl);
  load_weights(*model, name);
  const double tol = hkt::test::kFloat64Exact.rtol;

  const Tensor logits = logits_of(*model, batch);
  CHECK(logits.shape() == doc.at("logits").at("shape").get<Shape>());
  const double logits_err = rel_error(logits.to_vector(), values_of(doc.at("logits")));
  const Tensor loss = hkt::cross_entropy(logits, batch.labels);
  const double expected_loss = doc.at("loss").get<double>();
  const double loss_err = std::fabs(loss.item() - expected_loss) / std::fabs(expected_loss);
  INFO(name << ": logits error " << logits_err << ", loss " << std::setprecision(17) << loss.item() << " vs "
            << expected_loss << " (relative error " << std::setprecision(3) << loss_err << ")");
  CHECK(logits_err <= tol);
  CHECK(loss_err <= tol);

  loss.backward();
  const json& grads = doc.at("gradients");
  std::set<std::string> seen;
  double worst = 0;
  std::string worst_name;
  for (const auto& [pname, p] : model->named_parameters()) {
    INFO("parameter " << pname);
    REQUIRE(grads.contains(pname));
    seen.insert(pname);
    const json& g = grads.at(pname);
    CHECK(p.shape() == g.at("shape").get<Shape>());
    REQUIRE(p.grad().defined());
    const double err = rel_error(p.grad().to_vector(), values_of(g));
    INFO("gradient error " << err);
    CHECK(err <= tol);
    if (err >= worst) {
      worst = err;
      worst_name = pname;
    }
  }
  CHECK(seen.size() == grads.size());  // no gradient in the file that the model lacks
  INFO(name << ": worst gradient error " << worst << " (" << worst_name << ")");
  CHECK(worst <= tol);
}

}  // namespace

TEST_CASE("golden: float64 logits loss and every gradient match PyTorch", "[golden]") {
  for (const auto& name : kModels) {
    INFO("model " << name << ", fused attention");
    check_float64(name, hkt::AttentionImpl::Fused);
  }
}

TEST_CASE("golden: the composite attention matches PyTorch too", "[golden]") {
  for (const auto& name : kModels) {
    INFO("model " << name << ", composite attention");
    check_float64(name, hkt::AttentionImpl::Composite);
  }
}

TEST_CASE("golden: 5 AdamW steps give PyTorch's losses", "[golden]") {
  for (const auto& name : kModels) {
    INFO("model " << name);
    const json doc = load_golden(name);
    const json& adamw = doc.at("adamw");
    const Batch batch = batch_of(doc.at("batch"));
    auto model = make_model(doc, DType::Float64, 11);
    load_weights(*model, name);

    hkt::optim::AdamWConfig config;
    config.lr = adamw.at("lr").get<double>();
    config.beta1 = adamw.at("beta1").get<double>();
    config.beta2 = adamw.at("beta2").get<double>();
    config.eps = adamw.at("eps").get<double>();
    config.weight_decay = adamw.at("weight_decay").get<double>();
    hkt::optim::AdamW opt(model->named_parameters(), config);

    // The decay rule: exactly the parameters PyTorch decayed.
    const auto decayed = adamw.at("decayed").get<std::set<std::string>>();
    for (const auto& [pname, p] : model->named_parameters()) {
      INFO("parameter " << pname);
      CHECK(opt.decays(pname) == (decayed.count(pname) == 1));
    }

    const auto expected = adamw.at("losses").get<std::vector<double>>();
    REQUIRE(static_cast<std::int64_t>(expected.size()) == adamw.at("steps").get<std::int64_t>());
    std::vector<double> losses;
    for (std::size_t step = 0; step < expected.size(); ++step) {
      const Tensor loss = hkt::cross_entropy(logits_of(*model, batch), batch.labels);
      losses.push_back(loss.item());
      loss.backward();
      opt.step(config.lr);
      opt.zero_grad();
    }
    {
      hkt::NoGradGuard no_grad;
      losses.push_back(hkt::cross_entropy(logits_of(*model, batch), batch.labels).item());
    }
    std::vector<double> want = expected;
    want.push_back(adamw.at("loss_after").get<double>());
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(losses[i] - want[i]) / std::fabs(want[i]);
      INFO((i + 1 < want.size() ? "loss before step " + std::to_string(i + 1) : std::string("loss after the last step"))
           << ": " << std::setprecision(17) << losses[i] << " vs " << want[i] << " (relative error "
           << std::setprecision(3) << err << ")");
      CHECK(err <= hkt::test::kFloat64Exact.rtol);
    }
  }
}

TEST_CASE("golden: float32 logits and loss match the float64 PyTorch values", "[golden]") {
  for (const auto& name : kModels) {
    INFO("model " << name);
    const json doc = load_golden(name);
    const Batch batch = batch_of(doc.at("batch"));
    auto model = make_model(doc, DType::Float32, 3);
    load_weights(*model, name);
    hkt::NoGradGuard no_grad;
    const Tensor logits = logits_of(*model, batch);
    CHECK(logits.dtype() == DType::Float32);
    const Tensor loss = hkt::cross_entropy(logits, batch.labels);
    INFO("float32 logits error " << rel_error(logits.to_vector(), values_of(doc.at("logits"))) << ", loss "
                                 << std::setprecision(9) << loss.item() << " vs " << doc.at("loss").get<double>());
    hkt::test::require_close(logits, values_of(doc.at("logits")), hkt::test::kFloat32VsFloat64);
    hkt::test::require_close(loss, {doc.at("loss").get<double>()}, hkt::test::kFloat32VsFloat64);
  }
}

TEST_CASE("golden: save then load gives bit-identical logits", "[golden]") {
  static std::atomic<int> counter{0};
  for (const auto& name : kModels) {
    for (const DType dtype : {DType::Float64, DType::Float32}) {
      INFO("model " << name << ", " << hkt::dtype_name(dtype));
      const json doc = load_golden(name);
      const Batch batch = batch_of(doc.at("batch"));
      auto model = make_model(doc, dtype, 5);
      load_weights(*model, name);
      const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
      const std::filesystem::path path =
          std::filesystem::temp_directory_path() /
          ("hkt_golden_" + name + "_" + std::to_string(stamp) + "_" + std::to_string(counter++) + ".safetensors");
      hkt::safetensors::save(path.string(), model->named_parameters());
      auto fresh = make_model(doc, dtype, 99);  // different random weights until loaded
      hkt::safetensors::load_into(hkt::safetensors::load(path.string()), fresh->named_parameters());
      std::filesystem::remove(path);
      hkt::NoGradGuard no_grad;
      const auto a = logits_of(*model, batch).to_vector();
      const auto b = logits_of(*fresh, batch).to_vector();
      CHECK(a == b);
      const auto p = model->named_parameters(), q = fresh->named_parameters();
      REQUIRE(p.size() == q.size());
      for (std::size_t i = 0; i < p.size(); ++i) {
        INFO("parameter " << p[i].first);
        CHECK(p[i].first == q[i].first);
        CHECK(p[i].second.to_vector() == q[i].second.to_vector());
      }
    }
  }
}
