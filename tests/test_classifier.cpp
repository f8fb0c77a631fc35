// test_classifier.cpp: the sequence classifier: parameter names (PyTorch conventions),
// padding invariance of every pooling, feature mode, config errors.
#include "classifier.h"
#include "test_helpers.h"

using namespace hkt;
using namespace hkt::test;

namespace {
ClassifierConfig small_config(AttentionKind attention, Pooling pooling) {
  ClassifierConfig c;
  c.vocab_size = 11;
  c.max_len = 16;
  c.num_classes = 3;
  c.d_model = 8;
  c.n_heads = 2;
  c.n_layers = 2;
  c.d_ff = 12;
  c.pooling = pooling;
  c.attention = attention;
  c.hkt.levels = 3;
  return c;
}
}  // namespace

TEST_CASE("classifier: parameter names follow PyTorch conventions", "[model]") {
  Generator gen(0);
  Classifier m(small_config(AttentionKind::Hkt, Pooling::Cls), gen);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n + shape_str(p.shape()));
  // Registration order, which is the order of computation inside a block.
  const std::vector<std::string> expected_start = {"cls[8]",
                                                   "embedding.weight[11,8]",
                                                   "pos_embedding.weight[17,8]",
                                                   "blocks.0.ln1.weight[8]",
                                                   "blocks.0.ln1.bias[8]",
                                                   "blocks.0.attn.level_logits[2,3]",
                                                   "blocks.0.attn.w_q.0.weight[8,8]",
                                                   "blocks.0.attn.w_q.1.weight[8,8]",
                                                   "blocks.0.attn.w_q.2.weight[8,8]",
                                                   "blocks.0.attn.w_k.0.weight[8,8]",
                                                   "blocks.0.attn.w_k.1.weight[8,8]",
                                                   "blocks.0.attn.w_k.2.weight[8,8]",
                                                   "blocks.0.attn.w_v.weight[8,8]",
                                                   "blocks.0.attn.w_o.weight[8,8]",
                                                   "blocks.0.attn.downsample.1.weight[8,2]",
                                                   "blocks.0.attn.downsample.1.bias[8]",
                                                   "blocks.0.attn.downsample.2.weight[8,2]",
                                                   "blocks.0.attn.downsample.2.bias[8]",
                                                   "blocks.0.ln2.weight[8]",
                                                   "blocks.0.ln2.bias[8]",
                                                   "blocks.0.mlp.fc1.weight[12,8]",
                                                   "blocks.0.mlp.fc1.bias[12]",
                                                   "blocks.0.mlp.fc2.weight[8,12]",
                                                   "blocks.0.mlp.fc2.bias[8]",
                                                   "blocks.1.ln1.weight[8]"};
  REQUIRE(names.size() > expected_start.size());
  CHECK(std::vector<std::string>(names.begin(), names.begin() + static_cast<long>(expected_start.size())) ==
        expected_start);
  CHECK(names.back() == "head.bias[3]");
  CHECK(names[names.size() - 2] == "head.weight[3,8]");
  // MHA: the same model with one level and no level weights.
  Generator g2(0);
  Classifier mha(small_config(AttentionKind::Mha, Pooling::Mean), g2);
  for (auto& [n, p] : mha.named_parameters()) {
    CHECK(n.find("level_logits") == std::string::npos);
    CHECK(n.find("downsample") == std::string::npos);
    CHECK(n.find("w_q.1") == std::string::npos);
  }
}

TEST_CASE("classifier: logits do not depend on padding for every pooling", "[model]") {
  for (const AttentionKind attention : {AttentionKind::Mha, AttentionKind::Hkt}) {
    for (const Pooling pooling : {Pooling::Mean, Pooling::Cls, Pooling::Last}) {
      Generator gen(1);
      Classifier m(small_config(attention, pooling), gen, DType::Float64);
      const std::vector<std::int64_t> seq = {3, 1, 4, 1, 5, 9, 2};
      auto run = [&](std::int64_t T) {
        std::vector<std::int64_t> tokens(static_cast<std::size_t>(T), 0), mask(static_cast<std::size_t>(T), 0);
        for (std::size_t i = 0; i < seq.size(); ++i) {
          tokens[i] = seq[i];
          mask[i] = 1;
        }
        for (std::int64_t t = static_cast<std::int64_t>(seq.size()); t < T; ++t)
          tokens[static_cast<std::size_t>(t)] = 7;  // junk padding values
        NoGradGuard no_grad;
        Generator unused(0);
        return m.forward(Tensor::from_indices(tokens, {1, T}), Tensor(), Tensor::from_indices(mask, {1, T}), false,
                         unused);
      };
      const Tensor a = run(7), b = run(16);
      INFO(enum_name(attention) << " " << enum_name(pooling));
      CHECK(a.shape() == Shape{1, 3});
      require_close(b, a.to_vector(), kFloat64Exact);
    }
  }
}

TEST_CASE("classifier: feature mode and sinusoidal positions", "[model]") {
  ClassifierConfig c = small_config(AttentionKind::Hkt, Pooling::Mean);
  c.vocab_size = 0;
  c.num_features = 3;
  c.positions = Positions::Sinusoidal;
  Generator gen(2);
  Classifier m(c, gen);
  Generator g(0);
  const Tensor x = Tensor::uniform({2, 5, 3}, g, 0.0, 1.0);
  const Tensor logits = m.forward(Tensor(), x, Tensor::ones({2, 5}, DType::Int64), false, g);
  CHECK(logits.shape() == Shape{2, 3});
  // pe[1, 0] = sin(1), pe[1, 1] = cos(1), pe[1, 2] = sin(1 / 10000^(2/8)) = sin(0.1)
  const auto pe = sinusoidal_positions(2, 8, DType::Float64).to_vector();
  CHECK(pe[8] == Approx(std::sin(1.0)).epsilon(1e-15));
  CHECK(pe[9] == Approx(std::cos(1.0)).epsilon(1e-15));
  CHECK(pe[10] == Approx(std::sin(0.1)).epsilon(1e-14));
  for (auto& [n, p] : m.named_parameters()) CHECK(n.find("pos_embedding") == std::string::npos);
}

TEST_CASE("classifier: config and input errors name the field", "[model][errors]") {
  Generator gen(0);
  auto bad = [&](auto edit, const std::string& msg) {
    ClassifierConfig c = small_config(AttentionKind::Hkt, Pooling::Mean);
    edit(c);
    require_error([&] { Classifier m(c, gen); }, msg);
  };
  bad([](ClassifierConfig& c) { c.n_heads = 3; }, "model config: n_heads (3) must divide d_model (8)");
  bad([](ClassifierConfig& c) { c.num_features = 3; }, "exactly one must be > 0");
  bad([](ClassifierConfig& c) { c.dropout = 1.0; }, "model config: dropout must be in [0, 1)");
  bad([](ClassifierConfig& c) { c.hkt.levels = 7; }, "levels must be in 1..4, got 7");
  Classifier m(small_config(AttentionKind::Hkt, Pooling::Mean), gen);
  Generator g(0);
  require_error(
      [&] {
        m.forward(Tensor::from_indices({1, 2}, {1, 2}), Tensor(), Tensor::ones({1, 3}, DType::Int64), false, g);
      },
      "classifier: mask must be [B, T] = [1,2], got [1,3]");
  require_error(
      [&] {
        m.forward(Tensor::zeros({1, 17}, DType::Int64), Tensor(), Tensor::ones({1, 17}, DType::Int64), false, g);
      },
      "classifier: sequence length 17 is outside 1..16");
  require_error(
      [&] {
        m.forward(Tensor::from_indices({11}, {1, 1}), Tensor(), Tensor::ones({1, 1}, DType::Int64), false, g);
      },
      "embedding: index 11 at position 0 is outside [0, 11)");
}
