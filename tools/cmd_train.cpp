// cmd_train.cpp: `hkt train`, `hkt eval` and `hkt predict` (models/training/trainer.h does the work).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "config.h"
#include "io/safetensors.h"
#include "ops.h"
#include "theory.h"
#include "trainer.h"

namespace hkt::tools {

namespace {
config::Json read_json(const std::string& path) { return config::read_json_file(path); }
}  // namespace

void add_train_commands(CLI::App& app) {
  // ---- hkt train
  struct TrainArgs {
    std::string config, out = "runs/run", device = "cpu", resume;
    std::vector<std::string> sets;
    std::int64_t seed = -1, stop_after = 0;
    bool overwrite = false;
  };
  auto targs = std::make_shared<TrainArgs>();
  auto* train_cmd = app.add_subcommand("train", "Train a classifier from a JSON config (docs/config.md)");
  train_cmd->add_option("--config", targs->config, "Config file (JSON; keys not given keep their defaults)")
      ->check(readable_file());
  train_cmd->add_option("--set", targs->sets, "Override a config key: --set model.d_model=128 (repeatable)");
  train_cmd->add_option("--seed", targs->seed, "Shortcut for --set train.seed=N")->check(CLI::NonNegativeNumber);
  auto* out_opt = train_cmd->add_option("--out", targs->out, "Run directory to write")
                      ->capture_default_str()
                      ->check(nonempty_path());
  train_cmd
      ->add_option("--device", targs->device,
                   "cpu or cuda (every op on the GPU; checkpoints are device-independent, so --resume may change it)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  train_cmd
      ->add_option(
          "--resume", targs->resume,
          "Continue the run in this directory from its last checkpoint, writing there (no --config, --set or --out)")
      ->check(nonempty_path());
  train_cmd->add_flag("--overwrite", targs->overwrite,
                      "Replace a finished or stopped run in --out (its files are deleted first)");
  train_cmd
      ->add_option("--stop-after", targs->stop_after,
                   "Stop (with a checkpoint) after this step; continue later with --resume (0: no stop)")
      ->check(CLI::NonNegativeNumber);
  on_selected(train_cmd, [targs, out_opt] {
    config::Json cfg;
    std::string out = targs->out;
    if (!targs->resume.empty()) {
      check(targs->config.empty(),
            "train: --config and --resume exclude each other (a resumed run keeps its config.json)");
      // A resumed run writes into its own directory; an --out beside it would be ignored.
      check(out_opt->count() == 0, "train: --out and --resume exclude each other (the run resumed from --resume " +
                                       targs->resume + " keeps writing there)");
      out = targs->resume;
      cfg = config::merge(read_json(out + "/config.json"), out + "/config.json");
    } else {
      cfg = targs->config.empty() ? config::defaults() : config::load_file(targs->config);
    }
    std::vector<std::string> sets = targs->sets;
    if (targs->seed >= 0) sets.push_back("train.seed=" + std::to_string(targs->seed));
    if (targs->resume.empty())
      cfg = config::apply_sets(cfg, sets);
    else
      check(sets.empty(), "train --resume: --set and --seed cannot change a run being resumed");
    check(targs->resume.empty() || !targs->overwrite, "train: --overwrite and --resume exclude each other");
    const bool terminal = isatty(fileno(stdout)) != 0;
    TrainOptions options;
    options.out_dir = out;
    options.resume = !targs->resume.empty();
    options.overwrite = targs->overwrite;
    options.progress = &std::cout;
    options.progress_is_terminal = terminal;
    options.stop_after = targs->stop_after;
    options.device = parse_device(targs->device);
    options.eval_metrics = theory::eval_metrics;
    const auto result = hkt::train(cfg, options);
    if (result.empty()) return 0;  // stopped early by --stop-after
    std::cout << "best validation accuracy " << result["best_val_accuracy"].get<double>() << " at step "
              << result["best_step"].get<std::int64_t>() << "; test accuracy " << result["test_accuracy"].get<double>()
              << " (chance " << result["chance_level"].get<double>() << "); " << out << "/result.json\n";
    return 0;
  });

  // ---- hkt eval
  struct EvalArgs {
    std::string run, split = "test";
  };
  auto eargs = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "Evaluate a run's best checkpoint on a split");
  eval->add_option("--run", eargs->run, "Run directory (holds config.json and best.safetensors)")->required();
  eval->add_option("--split", eargs->split, "train, val or test")
      ->check(CLI::IsMember({"train", "val", "test"}))
      ->capture_default_str();
  on_selected(eval, [eargs] {
    const config::Json cfg = config::merge(read_json(eargs->run + "/config.json"), eargs->run + "/config.json");
    const TaskData task = load_task(cfg);
    auto model = build_model(cfg, task.train);
    load_weights(*model, eargs->run + "/best.safetensors");
    const data::Dataset& split = eargs->split == "train" ? task.train : eargs->split == "val" ? task.val : task.test;
    const Evaluation e = evaluate(*model, split, cfg["train"]["eval_batch_size"].get<std::int64_t>(),
                                  cfg["train"]["pad_to_longest"].get<bool>());
    std::cout << config::Json{{"split", eargs->split},
                              {"accuracy", e.accuracy},
                              {"loss", e.loss},
                              {"examples", e.examples},
                              {"chance_level", split.chance_level()}}
                     .dump(2)
              << "\n";
    return 0;
  });

  // ---- hkt predict
  struct PredictArgs {
    std::string checkpoint, config, input, output;
  };
  auto pargs = std::make_shared<PredictArgs>();
  auto* predict = app.add_subcommand("predict", "Class logits for token sequences given as JSON");
  predict->add_option("--checkpoint", pargs->checkpoint, "Weights (best.safetensors of a run)")
      ->required()
      ->check(readable_file());
  predict->add_option("--config", pargs->config, "The run's config.json")->required()->check(readable_file());
  predict->add_option("--input", pargs->input, "JSON list of token lists, e.g. [[3, 1, 4], [1, 5]]")
      ->required()
      ->check(readable_file());
  predict->add_option("--output", pargs->output, "JSON file to write: a list of logit lists")->required();
  on_selected(predict, [pargs] {
    const config::Json cfg = config::load_file(pargs->config);
    const config::Json input = read_json(pargs->input);
    check(input.is_array() && !input.empty(), pargs->input + ": expected a non-empty JSON list of token lists");
    // The model's sizes come from the checkpoint's metadata: no data is read.
    auto model = load_model(cfg, pargs->checkpoint);
    check(!model->config().num_features, "predict: feature-mode models (CIFAR-10 rgb) take no token input");
    // Token 0 is padding: trailing zeros are dropped (masked, as in training), a 0 before
    // the last real token is refused. lengths[i]: item i's real tokens.
    std::int64_t T = 0;
    std::vector<std::size_t> lengths;
    for (std::size_t i = 0; i < input.size(); ++i) {
      const std::string item = pargs->input + ": item " + std::to_string(i);
      check(input[i].is_array() && !input[i].empty(), item + " is not a non-empty list of tokens");
      std::size_t n = input[i].size();
      while (n > 0 && input[i][n - 1].is_number_integer() && input[i][n - 1].get<std::int64_t>() == 0) --n;
      check(n > 0, item + " holds only padding (token 0)");
      for (std::size_t t = 0; t < n; ++t)
        check(!(input[i][t].is_number_integer() && input[i][t].get<std::int64_t>() == 0),
              item + " token " + std::to_string(t) +
                  " is 0, the padding token, inside the sequence (padding may only trail)");
      const std::int64_t max_len = model->config().max_len;
      check(static_cast<std::int64_t>(n) <= max_len,
            item + " has " + std::to_string(n) + " tokens, more than the model's max_len " + std::to_string(max_len));
      lengths.push_back(n);
      T = std::max<std::int64_t>(T, static_cast<std::int64_t>(n));
    }
    const auto B = static_cast<std::int64_t>(input.size());
    std::vector<std::int64_t> tokens(static_cast<std::size_t>(B * T), 0), mask(static_cast<std::size_t>(B * T), 0);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < lengths[static_cast<std::size_t>(b)]; ++t) {
        const auto& v = input[static_cast<std::size_t>(b)][t];
        check(v.is_number_integer(),
              pargs->input + ": item " + std::to_string(b) + " token " + std::to_string(t) + " is not an integer");
        const std::int64_t id = v.get<std::int64_t>(), vocab = model->config().vocab_size;
        check(id >= 0 && id < vocab, pargs->input + ": item " + std::to_string(b) + " token " + std::to_string(t) +
                                         ": " + std::to_string(id) + " is outside the model's vocabulary 0.." +
                                         std::to_string(vocab - 1));
        tokens[static_cast<std::size_t>(b * T) + t] = v.get<std::int64_t>();
        mask[static_cast<std::size_t>(b * T) + t] = 1;
      }
    NoGradGuard no_grad;
    Generator unused(0);
    const Tensor logits = model->forward(Tensor::from_indices(tokens, {B, T}), Tensor(),
                                         Tensor::from_indices(mask, {B, T}), false, unused);
    const auto v = logits.to_vector();
    const std::int64_t C = logits.shape()[1];
    config::Json out = config::Json::array();
    for (std::int64_t b = 0; b < B; ++b) out.push_back(std::vector<double>(v.begin() + b * C, v.begin() + (b + 1) * C));
    check(!std::filesystem::is_directory(pargs->output),
          pargs->output + ": is a directory; --output needs a file name");
    write_file_atomic(pargs->output, out.dump() + "\n");  // a failed write leaves no .tmp behind
    std::cout << "wrote " << B << " x " << C << " logits to " << pargs->output << "\n";
    return 0;
  });
}

}  // namespace hkt::tools
