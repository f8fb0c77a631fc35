// test_train.cpp: training end to end on tiny generated ListOps: fitting a small set,
// determinism, bit-identical resume, the NaN stop, and config errors naming the key.
#include <filesystem>
#include <fstream>
#include <cmath>
#include <sstream>

#include "config.h"
#include "io/safetensors.h"
#include "run_lock.h"
#include "task.h"
#include "theory.h"
#include "test_helpers.h"
#include "train_helpers.h"
#include "trainer.h"

using namespace hkt;
using namespace hkt::test;
namespace fs = std::filesystem;

namespace {

config::Json tiny_config(const std::string& attention, std::int64_t steps) {
  config::Json overrides = config::Json::parse(R"({
    "data": {"task": "listops", "max_len": 48,
             "listops": {"source": "generate", "train": 32, "val": 16, "test": 16, "seed": 5}},
    "model": {"d_model": 32, "n_heads": 2, "n_layers": 1, "d_ff": 64, "dropout": 0.0},
    "train": {"batch_size": 8, "lr": 0.003, "schedule": "constant", "warmup_steps": 5, "eval_every": 20,
              "log_every": 10, "checkpoint_every": 10, "threads": 1}
  })");
  overrides["model"]["attention"] = attention;
  overrides["train"]["steps"] = steps;
  return config::merge(overrides);
}

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("hkt_test_train_" + name);
  fs::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("train: a tiny ListOps set is fitted to 100 percent training accuracy", "[train]") {
  for (const std::string attention : {"mha", "hkt"}) {
    const auto cfg = tiny_config(attention, 300);
    const std::string dir = fresh_dir("fit_" + attention);
    std::ostringstream log;
    const auto result = train_run(cfg, dir, log);
    const TaskData task = load_task(cfg);
    auto model = build_model(cfg, task.train);
    load_weights(*model, dir + "/best.safetensors");
    const Evaluation last_weights_on_train = [&] {
      auto m = build_model(cfg, task.train);
      load_weights(*m, dir + "/last.safetensors");
      return evaluate(*m, task.train, 64);
    }();
    INFO(attention << ": " << log.str());
    CHECK(last_weights_on_train.accuracy == 1.0);
    CHECK(last_weights_on_train.examples == 32);
    for (const auto* f : {"config.json", "metrics.jsonl", "best.safetensors", "last.safetensors", "result.json"})
      CHECK(fs::exists(dir + "/" + f));
    CHECK(result["parameter_count"].get<std::int64_t>() == model->parameter_count());
    CHECK(result["test_examples"].get<std::int64_t>() == 16);
  }
}

TEST_CASE("train: the same config gives bit-identical metrics and a resumed run matches", "[train]") {
  const auto cfg = tiny_config("hkt", 40);
  const std::string a = fresh_dir("det_a"), b = fresh_dir("det_b"), c = fresh_dir("det_c");
  std::ostringstream log;
  train_run(cfg, a, log);
  train_run(cfg, b, log);
  // The metrics differ only in their timing fields; compare the rest.
  auto strip_times = [](const std::string& text) {
    std::string out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto j = config::Json::parse(line);
      j.erase("tokens_per_s");
      out += j.dump() + "\n";
    }
    return out;
  };
  CHECK(strip_times(read_text(a + "/metrics.jsonl")) == strip_times(read_text(b + "/metrics.jsonl")));
  // Interrupted after step 20 (a checkpoint), then resumed: the same weights at the end.
  CHECK(train_run(cfg, c, log, false, 20).empty());
  CHECK_FALSE(fs::exists(c + "/result.json"));
  train_run(cfg, c, log, true);
  CHECK(strip_times(read_text(a + "/metrics.jsonl")) == strip_times(read_text(c + "/metrics.jsonl")));
  const auto wa = safetensors::load(a + "/last.safetensors"), wc = safetensors::load(c + "/last.safetensors");
  REQUIRE(wa.tensors.size() == wc.tensors.size());
  for (std::size_t i = 0; i < wa.tensors.size(); ++i) {
    INFO(wa.tensors[i].first);
    CHECK(wa.tensors[i].second.to_vector() == wc.tensors[i].second.to_vector());
  }
  // The results agree too (best step and accuracy were checkpointed exactly).
  auto result = [](const std::string& dir) { return config::Json::parse(read_text(dir + "/result.json")); };
  for (const char* key : {"best_val_accuracy", "best_step", "test_accuracy"}) {
    INFO(key);
    CHECK(result(a)[key] == result(c)[key]);
  }
  require_error([&] { train_run(cfg, a, log); }, "already holds a run");
  // --overwrite with a config that fails its checks leaves the old run untouched.
  auto bad = cfg;
  bad["model"]["n_heads"] = 3;
  const std::string before = read_text(a + "/metrics.jsonl");
  require_error([&] { train_run(bad, a, log, false, 0, true); }, "n_heads (3) must divide");
  CHECK(read_text(a + "/metrics.jsonl") == before);
  CHECK(fs::exists(a + "/best.safetensors"));
  auto changed = cfg;
  changed["train"]["lr"] = 0.1;
  require_error([&] { train_run(changed, a, log, true); },
                "resume: the config differs from the run's " + a +
                    "/config.json (/train/lr: 0.003 in config.json, 0.1 in the config given; resume the same run "
                    "unchanged)");
}

TEST_CASE("train: a non-finite loss stops the run and keeps the last checkpoint", "[train][errors]") {
  auto cfg = tiny_config("hkt", 50);
  cfg["train"]["lr"] = 1e30;  // the first update makes every weight enormous
  cfg["train"]["clip_norm"] = 0.0;
  cfg["train"]["checkpoint_every"] = 1;
  const std::string dir = fresh_dir("nan");
  std::ostringstream log;
  try {
    train_run(cfg, dir, log);
    FAIL("expected training to stop");
  } catch (const Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.rfind("step ", 0) == 0);
    CHECK((msg.find("the loss is") != std::string::npos || msg.find("not finite") != std::string::npos));
    CHECK(msg.find("training stopped") != std::string::npos);
  }
  // The last checkpoint is a whole, loadable file.
  const auto last = safetensors::load(dir + "/last.safetensors");
  CHECK(std::stoll(last.metadata.at("step")) >= 1);
}

TEST_CASE("config: keys with a fixed set of values parse to their enums, and a bad value names the key and the choices",
          "[train][errors]") {
  const auto read = [](const std::vector<std::string>& sets) {
    return config::model_config(config::apply_sets(config::defaults(), sets), 11, 0, 2, 16);
  };
  const ClassifierConfig c =
      read({"model.attention=mha", "model.positions=sinusoidal", "model.pooling=last", "model.hkt.fusion=outputs",
            "model.hkt.level_weights=per_layer", "model.hkt.downsampler=dense", "model.hkt.impl=composite",
            "model.attention_precision=bf16"});
  CHECK(c.attention == AttentionKind::Mha);
  CHECK(c.positions == Positions::Sinusoidal);
  CHECK(c.pooling == Pooling::Last);
  CHECK(c.hkt.fusion == Fusion::Outputs);
  CHECK(c.hkt.level_weights == LevelWeights::PerLayer);
  CHECK(c.hkt.downsampler == Downsampler::Dense);
  CHECK(c.impl == AttentionImpl::Composite);
  CHECK(c.hkt.precision == AttentionPrecision::Bf16);
  // The defaults (config.cpp's JSON) and ClassifierConfig's own defaults agree.
  const ClassifierConfig d = read({}), plain;
  CHECK(d.attention == plain.attention);
  CHECK(d.positions == plain.positions);
  CHECK(d.pooling == plain.pooling);
  CHECK(d.hkt.fusion == plain.hkt.fusion);
  CHECK(d.hkt.level_weights == plain.hkt.level_weights);
  CHECK(d.hkt.downsampler == plain.hkt.downsampler);
  CHECK(d.impl == plain.impl);
  CHECK(d.hkt.precision == plain.hkt.precision);
  CHECK(enum_name(Pooling::Cls) == "cls");
  CHECK(enum_name(LevelWeights::PerHead) == "per_head");
  require_error([&] { read({"model.pooling=max"}); },
                "config key 'model.pooling' must be \"mean\", \"cls\" or \"last\", got \"max\"");
  require_error([&] { read({"model.attention=linear"}); },
                "config key 'model.attention' must be \"mha\" or \"hkt\", got \"linear\"");
  require_error([&] { read({"model.positions=rotary"}); },
                "config key 'model.positions' must be \"learned\" or \"sinusoidal\", got \"rotary\"");
  require_error([&] { read({"model.hkt.fusion=sum"}); },
                "config key 'model.hkt.fusion' must be \"scores\" or \"outputs\", got \"sum\"");
  require_error([&] { read({"model.hkt.level_weights=per_token"}); },
                "config key 'model.hkt.level_weights' must be \"per_head\", \"per_layer\" or \"fixed\", got "
                "\"per_token\"");
  require_error([&] { read({"model.hkt.downsampler=conv"}); },
                "config key 'model.hkt.downsampler' must be \"depthwise\" or \"dense\", got \"conv\"");
  require_error([&] { read({"model.attention_precision=fp16"}); },
                "config key 'model.attention_precision' must be \"fp32\" or \"bf16\", got \"fp16\"");
  require_error([&] { read({"model.hkt.impl=flash"}); },
                "config key 'model.hkt.impl' must be \"fused\" or \"composite\", got \"flash\"");
  // Levels are range-checked as 64-bit numbers: 2^32 + 3, once read as int, became 3.
  require_error([&] { read({"model.hkt.levels=4294967299"}); },
                "config key 'model.hkt.levels' must be in 1..4, got 4294967299");
  require_error([&] { read({"model.hkt.levels=0"}); }, "config key 'model.hkt.levels' must be in 1..4, got 0");
  // train() refuses a bad value before it reads any data: here the data folder does not
  // exist, and the error is still the pooling one; nothing is written.
  const auto bad = config::apply_sets(config::defaults(),
                                      {"data.task=imdb", "data.imdb.dir=/nonexistent/aclImdb", "model.pooling=max"});
  const std::string dir = (std::filesystem::temp_directory_path() / "hkt_test_enum_first").string();
  std::filesystem::remove_all(dir);
  std::ostringstream log;
  require_error([&] { train_run(bad, dir, log); }, "config key 'model.pooling' must be");
  CHECK_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("config: unknown keys and wrong types are errors naming the key", "[train][errors]") {
  require_error([] { config::merge(config::Json::parse(R"({"model": {"d_modle": 3}})")); },
                "unknown config key 'model.d_modle'");
  require_error([] { config::merge(config::Json::parse(R"({"train": {"lr": "fast"}})")); },
                "config key 'train.lr' must be a number, got a string");
  require_error([] { config::merge(config::Json::parse(R"({"train": {"steps": 2.5}})")); },
                "config key 'train.steps' must be an integer, got a number");
  require_error([] { config::apply_sets(config::defaults(), {"model.hkt.levles=2"}); },
                "--set model.hkt.levles=2: unknown config key 'model.hkt.levles'");
  require_error([] { config::apply_sets(config::defaults(), {"nokey"}); }, "--set nokey: expected key=value");
  const auto set =
      config::apply_sets(config::defaults(), {"model.hkt.fixed_weights=[1, 0, 0]", "data.task=imdb", "train.steps=7"});
  CHECK(set["model"]["hkt"]["fixed_weights"] == config::Json::parse("[1, 0, 0]"));
  CHECK(set["data"]["task"] == "imdb");
  CHECK(set["train"]["steps"] == 7);
  auto bad_heads = tiny_config("hkt", 10);
  bad_heads["model"]["n_heads"] = 3;
  std::ostringstream log;
  require_error([&] { train_run(bad_heads, fresh_dir("heads"), log); },
                "model config: n_heads (3) must divide d_model (32)");
  auto bad_task = tiny_config("hkt", 10);
  bad_task["data"]["task"] = "mnist";
  require_error([&] { load_task(bad_task); }, "config key 'data.task' must be");
  auto no_dir = tiny_config("hkt", 10);
  no_dir["data"]["task"] = "imdb";
  require_error([&] { load_task(no_dir); }, "config key 'data.imdb.dir' must name a path");
  auto bad_schedule = tiny_config("hkt", 10);
  bad_schedule["train"]["schedule"] = "linear";
  require_error([&] { train_run(bad_schedule, fresh_dir("sched"), log); }, "linear");
}

TEST_CASE("train: one writer per run directory, and a finished run resumed changes nothing", "[train][reliability]") {
  std::ostringstream log;
  const auto cfg = tiny_config("mha", 10);
  const std::string dir = fresh_dir("locked");
  fs::create_directories(dir);
  {
    const RunLock holder(dir, "hkt train");  // another process's run, as far as train() can tell
    require_error([&] { train_run(cfg, dir, log); }, dir + " is in use by hkt train (process ");
    require_error([&] { train_run(cfg, dir, log); }, "/.lock is locked); wait for it to finish");
  }
  // The holder is gone: its .lock file (still there, with its text) blocks nothing.
  REQUIRE(fs::exists(dir + "/.lock"));
  train_run(cfg, dir, log);
  const std::string result = read_text(dir + "/result.json"), metrics = read_text(dir + "/metrics.jsonl");
  const auto mtime = fs::last_write_time(dir + "/result.json");
  std::ostringstream resumed;
  const auto again = train_run(cfg, dir, resumed, true);
  CHECK(resumed.str().find("is finished (result.json exists); nothing to do") != std::string::npos);
  CHECK(again == config::Json::parse(result));
  CHECK(read_text(dir + "/result.json") == result);
  CHECK(read_text(dir + "/metrics.jsonl") == metrics);
  CHECK(fs::last_write_time(dir + "/result.json") == mtime);
}

TEST_CASE(
    "train: a config.json edited between stop and resume is refused, naming the key, but train.threads may change",
    "[train][reliability]") {
  // `hkt train --resume DIR` reads DIR/config.json; the checkpoint keeps the config it was
  // trained with, so an edit in between (here the learning rate, or the attention
  // precision) is found instead of silently continuing a different run.
  std::ostringstream log;
  const auto cfg = tiny_config("hkt", 20);
  const std::string dir = fresh_dir("edited");
  CHECK(train_run(cfg, dir, log, false, 10).empty());
  const auto edit = [&](const config::Json& c) {
    std::ofstream(dir + "/config.json") << c.dump(2) << "\n";
    return c;
  };
  auto lr = cfg;
  lr["train"]["lr"] = 0.5;
  require_error([&] { train_run(edit(lr), dir, log, true); },
                "differs from the config " + dir +
                    "/last.safetensors was trained with (/train/lr: 0.003 in the "
                    "checkpoint, 0.5 in config.json); a run resumes unchanged");
  // A model size too: named before any weight is loaded (which would otherwise fail on
  // the first tensor's shape).
  auto width = cfg;
  width["model"]["d_model"] = 16;
  require_error([&] { train_run(edit(width), dir, log, true); },
                "(/model/d_model: 32 in the checkpoint, 16 in config.json)");
  // An element appended to an array is named by its index (RFC 6902's diff writes "/-").
  auto seeds = cfg;
  seeds["experiment"]["seeds"].push_back(7);
  require_error([&] { train_run(edit(seeds), dir, log, true); },
                "(/experiment/seeds/3: absent in the checkpoint, 7 in config.json)");
  auto precision = cfg;
  precision["model"]["attention_precision"] = "bf16";
  require_error([&] { train_run(edit(precision), dir, log, true); },
                "(/model/attention_precision: \"fp32\" in the checkpoint, \"bf16\" in config.json)");
  CHECK_FALSE(fs::exists(dir + "/result.json"));  // nothing was trained by the refused resumes
  // Another thread count is not a different run: the resume goes through to the end,
  // unless asked to stop at a step the checkpoint (step 10) has already passed.
  auto threads = cfg;
  threads["train"]["threads"] = 2;
  require_error([&] { train_run(edit(threads), dir, log, true, 10); },
                "resume: --stop-after 10 is not after step 10, where " + dir + "/last.safetensors stands");
  const auto result = train_run(threads, dir, log, true);
  CHECK(result["best_step"].get<std::int64_t>() >= 1);
  CHECK(fs::exists(dir + "/result.json"));
}

TEST_CASE("train: negative threads and zero batch sizes are refused before any step", "[train][reliability]") {
  std::ostringstream log;
  auto cfg = tiny_config("mha", 10);
  cfg["train"]["threads"] = -1;
  const std::string dir = fresh_dir("threads");
  require_error([&] { train_run(cfg, dir, log); },
                "config key 'train.threads' must be in 0..1024 (0: the OpenMP default), got -1");
  // Beyond the cap, and beyond 32 bits (once read as int, 2^32 + 2 became 2 threads).
  for (std::int64_t threads : {std::int64_t{1025}, std::int64_t{100000}, (std::int64_t{1} << 32) + 2}) {
    cfg["train"]["threads"] = threads;
    require_error([&] { train_run(cfg, dir, log); },
                  "config key 'train.threads' must be in 0..1024 (0: the OpenMP "
                  "default), got " +
                      std::to_string(threads));
  }
  cfg["train"]["threads"] = 1;
  cfg["train"]["eval_batch_size"] = 0;
  require_error([&] { train_run(cfg, dir, log); }, "config key 'train.eval_batch_size' must be >= 1, got 0");
  CHECK_FALSE(fs::exists(dir));  // refused before the run directory was made
}

TEST_CASE("config files: a key twice in one object is refused at any depth, naming the key path",
          "[config][reliability]") {
  TempDir tmp("dupkeys");
  const std::string top = tmp.write("top.json", R"({"train": {"steps": 7}, "train": {"lr": 0.1}})");
  require_error([&] { config::load_file(top); }, top + ": the key 'train' appears twice");
  const std::string nested = tmp.write("nested.json", R"({"model": {"hkt": {"levels": 2, "levels": 3}}})");
  require_error([&] { config::load_file(nested); }, nested + ": the key 'model.hkt.levels' appears twice");
  const std::string in_list = tmp.write("list.json", R"({"experiment": {"variants": [{"name": "a", "name": "b"}]}})");
  require_error([&] { config::load_file(in_list); }, "the key 'experiment.variants[].name' appears twice");
  require_error([] { config::apply_sets(config::defaults(), {R"(train={"steps": 1, "steps": 2})"}); },
                "--set train={\"steps\": 1, \"steps\": 2}: the key 'steps' appears twice");
  // The same key in two different objects is fine.
  const std::string ok = tmp.write("ok.json", R"({"train": {"steps": 7}, "data": {"listops": {"seed": 1}}})");
  CHECK(config::load_file(ok).at("train").at("steps") == 7);
}

TEST_CASE("config files: nesting deeper than 32 levels is refused, naming where, instead of overflowing the stack",
          "[config][reliability]") {
  // 100,000 open brackets in one value once crashed hkt (the copies and comparisons of
  // the tree recurse); 32 levels is far beyond any config.
  TempDir tmp("deep");
  const std::string deep = tmp.write(
      "deep.json", R"({"experiment": {"name": )" + std::string(100000, '[') + std::string(100000, ']') + "}}");
  require_error([&] { config::load_file(deep); },
                deep + ": nested deeper than 32 levels (at 'experiment.name[][][][][]");
  require_error(
      [] { config::apply_sets(config::defaults(), {"train.lr=" + std::string(40, '[') + std::string(40, ']')}); },
      ": nested deeper than 32 levels");
  // 30 levels parse (and are then refused by the config's own checks, not by the depth).
  const std::string fine =
      tmp.write("fine.json", R"({"experiment": {"name": )" + std::string(30, '[') + std::string(30, ']') + "}}");
  CHECK(config::read_json_file(fine).at("experiment").at("name").is_array());
}

TEST_CASE("train: a checkpoint with a NaN or infinite weight is refused, naming the file and tensor",
          "[train][reliability]") {
  std::ostringstream log;
  const auto cfg = tiny_config("hkt", 10);
  const std::string dir = fresh_dir("nanweight");
  train_run(cfg, dir, log);
  auto file = safetensors::load(dir + "/best.safetensors");
  REQUIRE(file.tensors.size() >= 2);
  for (double bad : {std::nan(""), -HUGE_VAL}) {
    auto tensors = file.tensors;
    auto values = tensors[1].second.to_vector();
    values[3] = bad;
    tensors[1].second = Tensor::from_vector(values, tensors[1].second.shape(), tensors[1].second.dtype());
    const std::string damaged = dir + "/damaged.safetensors";
    safetensors::save(damaged, tensors, file.metadata);
    require_error([&] { load_model(cfg, damaged); },
                  damaged + ": tensor '" + tensors[1].first + "' holds a non-finite value (");
    require_error([&] { load_model(cfg, damaged); }, ") at element 3; the checkpoint is damaged");
  }
  // Metadata that lies about a size: the message names the file and the metadata.
  auto metadata = file.metadata;
  metadata["max_len"] = "99";
  const std::string lying = dir + "/lying.safetensors";
  safetensors::save(lying, file.tensors, metadata);
  require_error([&] { load_model(cfg, lying); },
                lying + ": its tensors do not fit the model built from its metadata (");
  require_error([&] { load_model(cfg, lying); }, "max_len = 99");
}

TEST_CASE("train: TrainOptions::eval_metrics adds its fields to every validation line", "[train]") {
  const auto cfg = tiny_config("hkt", 20);  // one validation, at step 20, then the checkpoint of step 20
  const std::string dir = fresh_dir("eval_metrics");
  std::ostringstream log;
  TrainOptions options;
  options.out_dir = dir;
  options.progress = &log;
  options.eval_metrics = theory::eval_metrics;
  train(cfg, options);
  config::Json val;
  std::istringstream lines(read_text(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);)
    if (auto j = config::Json::parse(line); j.contains("val_accuracy")) val = j;
  REQUIRE(val.contains("m_sym_share"));
  // Recomputed from the saved weights: M = W_Q,h^T W_K,h over head h's rows (PyTorch
  // layout, y = x W^T), share = ||(M + M^T) / 2||_F / ||M||_F.
  const auto weights = safetensors::load(dir + "/last.safetensors");
  auto weight = [&](const std::string& name) {
    for (const auto& [n, t] : weights.tensors)
      if (n == name) return t.to_vector();
    FAIL("no tensor " << name);
    return std::vector<double>{};
  };
  const std::int64_t d = 32, H = 2, dh = d / H, L = 3;
  const auto& share = val["m_sym_share"];
  REQUIRE(share.size() == 1);  // layers
  REQUIRE(share[0].size() == static_cast<std::size_t>(H));
  for (std::int64_t h = 0; h < H; ++h) {
    REQUIRE(share[0][static_cast<std::size_t>(h)].size() == static_cast<std::size_t>(L));
    for (std::int64_t l = 0; l < L; ++l) {
      const auto wq = weight("blocks.0.attn.w_q." + std::to_string(l) + ".weight");
      const auto wk = weight("blocks.0.attn.w_k." + std::to_string(l) + ".weight");
      std::vector<double> m(static_cast<std::size_t>(d * d), 0.0);
      for (std::int64_t r = h * dh; r < (h + 1) * dh; ++r)
        for (std::int64_t i = 0; i < d; ++i)
          for (std::int64_t j = 0; j < d; ++j)
            m[static_cast<std::size_t>(i * d + j)] +=
                wq[static_cast<std::size_t>(r * d + i)] * wk[static_cast<std::size_t>(r * d + j)];
      double sym = 0, all = 0;
      for (std::int64_t i = 0; i < d; ++i)
        for (std::int64_t j = 0; j < d; ++j) {
          const double mij = m[static_cast<std::size_t>(i * d + j)], mji = m[static_cast<std::size_t>(j * d + i)];
          sym += 0.25 * (mij + mji) * (mij + mji);
          all += mij * mij;
        }
      INFO("head " << h << " level " << l);
      CHECK(share[0][static_cast<std::size_t>(h)][static_cast<std::size_t>(l)].get<double>() ==
            Approx(std::sqrt(sym / all)).epsilon(1e-9));
    }
  }
  // A callback that returns something else than an object, or one of the line's own keys,
  // is refused.
  options.out_dir = fresh_dir("eval_metrics_bad");
  options.eval_metrics = [](const Classifier&) { return config::Json::array(); };
  require_error([&] { train(cfg, options); }, "train: TrainOptions::eval_metrics must return a JSON object");
  options.out_dir = fresh_dir("eval_metrics_key");
  options.eval_metrics = [](const Classifier&) { return config::Json{{"best", 1}}; };
  require_error([&] { train(cfg, options); },
                "train: TrainOptions::eval_metrics returned 'best', a key of the line itself");
}
