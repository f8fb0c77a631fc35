// test_experiment.cpp: `hkt experiment` (models/experiment/experiment.h): the summary statistics
// against hand-computed values, the variant checks, the run layout with reuse and resume,
// and the attention maps (level scores against a naive float64 loop, rows summing to 1).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "attention_maps.h"
#include "config.h"
#include "experiment.h"
#include "ops.h"
#include "task.h"
#include "test_helpers.h"
#include "train_helpers.h"
#include "trainer.h"

using namespace hkt;
using namespace hkt::test;
namespace fs = std::filesystem;
using config::Json;

namespace {

Json tiny_experiment(std::int64_t steps) {
  return config::merge(Json::parse(R"({
    "data": {"task": "listops", "max_len": 48,
             "listops": {"source": "generate", "train": 32, "val": 16, "test": 16, "seed": 5}},
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "dropout": 0.0},
    "train": {"batch_size": 8, "lr": 0.003, "schedule": "constant", "warmup_steps": 1, "eval_every": 2,
              "log_every": 2, "checkpoint_every": 2, "threads": 1, "steps": )" +
                                   std::to_string(steps) + R"(},
    "experiment": {"seeds": [0], "name": "tiny"}
  })"));
}

RunRecord record(const std::string& variant, std::int64_t seed, double val, double test, double ms,
                 const Json& config) {
  Json result = {{"best_val_accuracy", val},       {"test_accuracy", test},
                 {"time_per_step_ms", ms},         {"parameter_count", 100},
                 {"chance_level", 0.125},          {"steps", 10},
                 {"peak_tensor_bytes", 1048576.0}, {"extra_tests", {{"listops-released", {{"accuracy", test / 2}}}}}};
  return {variant, seed, variant + "/seed-" + std::to_string(seed), config, result, Json()};
}

}  // namespace

TEST_CASE("experiment: summary means, sample standard deviations, ratios and paired differences", "[experiment]") {
  Json cfg =
      config::merge(Json::parse(R"({"data": {"max_len": 512}, "model": {"n_heads": 4, "d_model": 64, "n_layers": 2},
                                           "experiment": {"paper_row": "listops"}})"));
  const auto variants = experiment_variants(cfg);  // the defaults: mha, hkt
  REQUIRE(variants.size() == 2);
  const Json mha = run_config(cfg, variants[0], 0), hkt3 = run_config(cfg, variants[1], 0);
  std::vector<RunRecord> runs = {record("mha", 0, 0.40, 0.50, 100, mha),  record("mha", 1, 0.50, 0.60, 110, mha),
                                 record("mha", 2, 0.60, 0.70, 120, mha),  record("hkt", 0, 0.45, 0.55, 130, hkt3),
                                 record("hkt", 1, 0.55, 0.70, 140, hkt3), record("hkt", 2, 0.65, 0.70, 150, hkt3)};
  const Json s = summarize(cfg, variants, runs);
  const Json& m = s.at("variants")[0];
  const Json& h = s.at("variants")[1];
  CHECK(m.at("variant") == "mha");
  // By hand: mean(0.5, 0.6, 0.7) = 0.6; sample std = sqrt((0.01 + 0 + 0.01) / 2) = 0.1.
  CHECK(m.at("test_accuracy").at("mean").get<double>() == Approx(0.6).epsilon(1e-12));
  CHECK(m.at("test_accuracy").at("std").get<double>() == Approx(0.1).epsilon(1e-12));
  CHECK(m.at("val_accuracy").at("std").get<double>() == Approx(0.1).epsilon(1e-12));
  // hkt test (0.55, 0.70, 0.70): mean 0.65, deviations (-0.1, 0.05, 0.05): std sqrt(0.015 / 2).
  CHECK(h.at("test_accuracy").at("mean").get<double>() == Approx(0.65).epsilon(1e-12));
  CHECK(h.at("test_accuracy").at("std").get<double>() == Approx(std::sqrt(0.0075)).epsilon(1e-12));
  CHECK(h.at("extra_tests").at("listops-released").at("mean").get<double>() == Approx(0.325).epsilon(1e-12));
  // Time ratio 140 / 110; score FLOPs at T = 512, L = 3 vs 1: 1 + 1/4 + 1/16 = 1.3125.
  CHECK(h.at("time_ratio").get<double>() == Approx(140.0 / 110.0).epsilon(1e-12));
  CHECK(h.at("score_flop_ratio").get<double>() == Approx(1.3125).epsilon(1e-12));
  CHECK(m.at("score_flop_ratio").get<double>() == 1.0);
  // 2 layers * 2 H T^2 d_h = 2 * 2 * 4 * 512^2 * 16 for MHA.
  CHECK(m.at("score_flops_per_example").get<double>() == 2.0 * 2 * 4 * 512.0 * 512 * 16);
  // Paired differences per seed: +0.05, +0.10, 0.00 -> mean 0.05, std 0.05.
  const Json& d = h.at("differences_to_baseline").at("test");
  CHECK(d.at("n") == 3);
  CHECK(d.at("mean").get<double>() == Approx(0.05).epsilon(1e-9));
  CHECK(d.at("std").get<double>() == Approx(0.05).epsilon(1e-9));
  // t = 0.05 / (0.05 / sqrt(3)) = sqrt(3) < 4.303 (Student t, 2 d.f., 95 %).
  CHECK(d.at("t").get<double>() == Approx(std::sqrt(3.0)).epsilon(1e-9));
  CHECK(d.at("t_critical_95").get<double>() == 4.303);
  CHECK(d.at("significant_95") == false);
  // 95 % CI of the mean: 0.05 -+ 4.303 * 0.05 / sqrt(3) = [-0.07422, +0.17422].
  CHECK(d.at("ci95")[0].get<double>() == Approx(0.05 - 4.303 * 0.05 / std::sqrt(3.0)).epsilon(1e-9));
  CHECK(d.at("ci95")[1].get<double>() == Approx(0.05 + 4.303 * 0.05 / std::sqrt(3.0)).epsilon(1e-9));
  CHECK(s.at("paper").at("hkt")[0].get<double>() == 55.10);
  const std::string md = summary_markdown(s, "hkt experiment --config x");
  CHECK(md.find("| mha | 1 | 100 | 3 | 50.00 ± 10.00 | 60.00 ± 10.00 |") != std::string::npos);
  CHECK(md.find("- hkt, test: +5.00 ± 5.00 (per seed: +5.0 +10.0 +0.0; n = 3); 95 % CI [-7.42, +17.42]; t = 1.73 "
                "against 4.303: not distinguishable") != std::string::npos);
  // Extra tests are paired too: halves of the test values, so +2.50 ± 2.50.
  CHECK(md.find("- hkt, listops-released: +2.50 ± 2.50 (per seed: +2.5 +5.0 +0.0; n = 3)") != std::string::npos);
  CHECK(md.find("1.3125") != std::string::npos);
  CHECK(md.find("standard MHA 50.33 ± 0.12, HKT (L = 3) 55.10 ± 0.29 (+4.77 pp)") != std::string::npos);
}

TEST_CASE("experiment: bad variants are errors naming the entry", "[experiment][errors]") {
  auto with_variants = [](const std::string& list) {
    Json c = config::merge(Json::object());
    c["experiment"]["variants"] = Json::parse(list);
    return c;
  };
  require_error([&] { experiment_variants(with_variants("[]")); }, "must be a non-empty list");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "a/b"}])")); },
                "variants[0]': name 'a/b' may hold only");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "summary.json"}])")); },
                "name 'summary.json' may hold only");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "a"}, {"name": "a"}])")); },
                "variants[1]': the name 'a' is used twice");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "a", "sett": {}}])")); }, "unknown key 'sett'");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "a", "set": {"train.seed": 3}}])")); },
                "cannot set 'train.seed'");
  require_error([&] { experiment_variants(with_variants(R"([{"name": "a", "set": {"experiment.seeds": [1]}}])")); },
                "cannot change");
  const Json c = with_variants(R"([{"name": "x", "set": {"model.hkt.levls": 2}}])");
  const auto v = experiment_variants(c);
  require_error([&] { run_config(c, v[0], 0); },
                "experiment variant 'x': --set model.hkt.levls=2: unknown config key 'model.hkt.levls'");
  require_error([&] { paper_row("listopz"); }, "'experiment.paper_row' must be");
}

TEST_CASE("experiment: runs every variant, reuses finished runs, resumes interrupted ones, refuses a changed config",
          "[experiment]") {
  TempDir dir("experiment");
  const std::string out = dir.file("exp");
  Json cfg = tiny_experiment(4);
  // An interrupted run of the second variant: stopped after step 2.
  const auto variants = experiment_variants(cfg);
  std::ostringstream quiet;
  train_run(run_config(cfg, variants[1], 0), out + "/hkt/seed-0", quiet, false, 2);
  REQUIRE(!fs::exists(out + "/hkt/seed-0/result.json"));

  std::ostringstream first;
  const Json s = run_experiment(cfg, out, "test", first, false);
  INFO(first.str());
  CHECK(first.str().find("[1/2] mha/seed-0: training") != std::string::npos);
  CHECK(first.str().find("[2/2] hkt/seed-0: resuming") != std::string::npos);
  for (const char* f : {"summary.json", "summary.md", "attention_maps.json", "experiment.json",
                        "mha/seed-0/result.json", "hkt/seed-0/result.json", "hkt/seed-0/best.safetensors"})
    CHECK(fs::exists(out + "/" + f));
  REQUIRE(s.at("variants").size() == 2);
  CHECK(s.at("variants")[1].at("levels") == 3);
  // The resumed run equals an uninterrupted one (trainer.h's guarantee, seen from here).
  const std::string other = dir.file("straight");
  const Json straight = train_run(run_config(cfg, variants[1], 0), other, quiet);
  CHECK(straight.at("best_val_accuracy") == s.at("all_runs")[1].at("result").at("best_val_accuracy"));

  std::ostringstream second;
  const Json again = run_experiment(cfg, out, "test", second, false);
  CHECK(second.str().find("[1/2] mha/seed-0: finished before, reused") != std::string::npos);
  CHECK(second.str().find("training") == std::string::npos);
  CHECK(again.at("variants") == s.at("variants"));

  Json changed = cfg;
  changed["train"]["lr"] = 0.001;
  std::ostringstream third;
  require_error([&] { run_experiment(changed, out, "test", third, false); },
                "holds a run with a different config (first difference: 'train.lr')");
}

TEST_CASE("attention maps: level scores match a float64 loop and every map row is a distribution", "[experiment]") {
  Json cfg = tiny_experiment(1);
  cfg["model"]["hkt"]["levels"] = 2;
  cfg["train"]["dtype"] = "float64";
  const TaskData task = load_task(cfg);
  const auto model = build_model(cfg, task.train);
  // Level-0 scores by hand: S[h, i, j] = scale * sum_c q[i, h*dh + c] k[j, h*dh + c],
  // q = x W_q^T, k = x W_k^T, from the parameters' values.
  const data::Dataset one = task.val.subset({0}, "val");
  const data::Batch b = data::Loader(one, 1, false, 0, true, DType::Float64).batch(0, 0);
  Tensor mask;
  const Tensor x = model->attention_inputs(b.tokens, b.features, b.mask, &mask)[0];
  const auto& attn = model->blocks()[0]->attention();
  const auto scores = attn.level_scores(x, mask);
  REQUIRE(scores.size() == 2);
  std::vector<double> wq, wk;
  for (const auto& [name, p] : model->named_parameters()) {
    if (name == "blocks.0.attn.w_q.0.weight") wq = p.to_vector();
    if (name == "blocks.0.attn.w_k.0.weight") wk = p.to_vector();
  }
  REQUIRE(wq.size() == 256);
  const auto xv = x.to_vector(), sv = scores[0].to_vector();
  const std::int64_t T = x.shape()[1], d = 16, dh = 8;
  double worst = 0;
  for (std::int64_t h = 0; h < 2; ++h)
    for (std::int64_t i = 0; i < T; ++i)
      for (std::int64_t j = 0; j < T; ++j) {
        double s = 0;
        for (std::int64_t c = 0; c < dh; ++c) {
          double q = 0, k = 0;
          for (std::int64_t e = 0; e < d; ++e) {
            q += xv[static_cast<std::size_t>(i * d + e)] * wq[static_cast<std::size_t>((h * dh + c) * d + e)];
            k += xv[static_cast<std::size_t>(j * d + e)] * wk[static_cast<std::size_t>((h * dh + c) * d + e)];
          }
          s += q * k;
        }
        worst = std::max(worst, std::fabs(s / std::sqrt(8.0) - sv[static_cast<std::size_t>((h * T + i) * T + j)]));
      }
  CHECK(worst < 1e-12);
  CHECK(scores[1].shape() == Shape({1, 2, (T + 1) / 2, (T + 1) / 2}));

  const Json maps = attention_maps(*model, task.val, 128);
  CHECK(maps.at("levels") == 2);
  const std::int64_t len = maps.at("length").get<std::int64_t>();
  REQUIRE(len <= 128);  // no crop: every row sums to 1 (to the 5 digits kept)
  for (const auto& level : maps.at("level"))
    for (const auto& head : level)
      for (const auto& row : head) {
        double total = 0;
        for (const auto& v : row) total += v.get<double>();
        CHECK(total == Approx(1.0).margin(1e-3));
      }
  CHECK(static_cast<std::int64_t>(maps.at("fused")[0].size()) == len);
  CHECK(static_cast<std::int64_t>(maps.at("level")[1][0].size()) == (len + 1) / 2);
}

TEST_CASE("attention maps: a causal model's maps put no weight on later keys", "[experiment]") {
  Json cfg = tiny_experiment(1);
  cfg["model"]["hkt"]["causal"] = true;
  const TaskData task = load_task(cfg);
  const auto model = build_model(cfg, task.train);
  const Json maps = attention_maps(*model, task.val, 128);
  std::int64_t checked = 0;
  for (const auto& level : maps.at("level"))
    for (const auto& head : level)
      for (std::size_t i = 0; i < head.size(); ++i)
        for (std::size_t j = i + 1; j < head[i].size(); ++j, ++checked) CHECK(head[i][j].get<double>() == 0.0);
  for (const auto& head : maps.at("fused"))
    for (std::size_t i = 0; i < head.size(); ++i)
      for (std::size_t j = i + 1; j < head[i].size(); ++j, ++checked) CHECK(head[i][j].get<double>() == 0.0);
  CHECK(checked > 100);
  // The first query sees only itself.
  CHECK(maps.at("level")[0][0][0][0].get<double>() == 1.0);
}

TEST_CASE("experiment: a variant whose model cannot be built is refused before any training", "[experiment][errors]") {
  TempDir dir("experiment-refuse");
  Json cfg = tiny_experiment(2);
  cfg["experiment"]["variants"] = Json::parse(R"([{"name": "mha", "set": {"model.attention": "mha"}},
      {"name": "fixed", "set": {"model.hkt.level_weights": "fixed", "model.hkt.fixed_weights": [0.5, 0.5]}}])");
  std::ostringstream progress;
  require_error([&] { run_experiment(cfg, dir.file("exp"), "test", progress, false); }, "experiment variant 'fixed': ");
  CHECK(!fs::exists(dir.file("exp") + "/mha"));
  CHECK(!fs::exists(dir.file("exp") + "/experiment.json"));
}
