// finetune_ffn: fine-tune the MLP of a Hugging Face Llama-style checkpoint from C++ and
// hand it back to PyTorch.
//
//   1. load a bfloat16 checkpoint sharded in two safetensors files behind
//      model.safetensors.index.json, and map its keys (gate_proj, up_proj, down_proj
//      under model.layers.0.mlp.) onto FeedForward::swiglu (layer1, linear_v, layer2);
//   2. fine-tune it in float32 with Adam to imitate a "teacher": the same block with
//      its weights moved a little;
//   3. save it back in the checkpoint's layout and dtype, as safetensors and as a
//      torch.save file that `torch.load(path, weights_only=True)` reads.
//
//   python3 examples/finetune_ffn.py make ckpt     # the checkpoint (PyTorch, no download)
//   finetune_ffn --checkpoint ckpt                  # writes ckpt/finetuned.{safetensors,pt}
//   python3 examples/finetune_ffn.py check ckpt    # PyTorch loads both and checks outputs
#include <cstring>
#include <filesystem>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

using namespace xg;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "model.layers.0.mlp.";

struct Options {
    std::string checkpoint, out;
    std::size_t d_model = 32, d_ff = 88;
    int steps = 200;
    double lr = 3e-3, shift = 0.1, max_ratio = 0.3;
    bool quiet = false;
};

// The block to imitate: `block`'s weights each moved by `shift` times their own spread.
std::shared_ptr<nn::FeedForward> make_teacher(const nn::FeedForward& block, double shift) {
    auto teacher = std::dynamic_pointer_cast<nn::FeedForward>(block.clone());
    NoGradGuard no_grad;
    for (Tensor& p : teacher->parameters()) {
        const double spread = xg::std(p).item<double>();
        p.add_(randn_like(p) * (shift * spread));
    }
    return teacher;
}

// Adam on mean squared error against the teacher's outputs; returns {first, last} loss.
std::pair<double, double> finetune(nn::FeedForward& student, nn::FeedForward& teacher,
                                   const Options& o) {
    optim::Adam adam(student.parameters(), optim::AdamOptions(o.lr));
    double first = 0, last = 0;
    for (int step = 0; step < o.steps; ++step) {
        const Tensor x = randn({256, o.d_model});
        Tensor target;
        {
            NoGradGuard no_grad;
            target = teacher(x);
        }
        const Tensor loss = mse_loss(student(x), target);
        adam.zero_grad();
        loss.backward();
        adam.step();
        last = loss.item<double>();
        if (step == 0) first = last;
        if (!o.quiet && (step % 50 == 0 || step + 1 == o.steps))
            fmt::print("step {:4d}  loss {:.6f}\n", step, last);
    }
    return {first, last};
}

// The checkpoint's layout and dtype: FeedForward's keys back to Llama's, in bfloat16.
StateDict as_checkpoint(nn::Module& block) {
    const KeyMap to_llama = KeyMap()
                                .rename(R"(layer1\.weight)", "gate_proj.weight")
                                .rename(R"(linear_v\.weight)", "up_proj.weight")
                                .rename(R"(layer2\.weight)", "down_proj.weight")
                                .add_prefix(kPrefix);
    StateDict out;
    for (const auto& [key, t] : to_llama(block.state_dict()))
        out.insert_or_assign(key, t.to(kBFloat16));
    return out;
}

// Inputs and the outputs of the saved (bfloat16) weights, run in float32, for
// PyTorch to compare with (finetune_ffn.py check).
StateDict probe(const StateDict& saved, const Options& o) {
    auto block = nn::FeedForward::swiglu(o.d_model, o.d_ff, 0.0);
    block->load_state_dict(KeyMap::llama_mlp(kPrefix)(saved));  // bfloat16 -> float32, exactly
    block->eval();
    NoGradGuard no_grad;
    StateDict out;
    const Tensor x = randn({16, o.d_model});
    out.insert_or_assign("x", x);
    out.insert_or_assign("y", (*block)(x));
    return out;
}

// Our own reader must give back exactly what was written.
void check_round_trip(const StateDict& saved, const std::string& path) {
    const StateDict back = load(path);
    check(back.keys() == saved.keys(), "finetune_ffn: '{}' holds other keys", path);
    for (const auto& [key, t] : saved) {
        const Tensor& b = back.at(key);
        check(b.dtype() == kBFloat16 && b.shape() == t.shape() &&
                  std::memcmp(b.data_ptr(), t.data_ptr(), t.nbytes()) == 0,
              "finetune_ffn: '{}' does not hold the bfloat16 tensor '{}' that was saved", path,
              key);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Fine-tune the MLP of a bfloat16 Llama-style checkpoint and save it back."};
    app.add_option("--checkpoint", o.checkpoint,
                   "folder with model.safetensors.index.json and its shards")
        ->required();
    app.add_option("--out", o.out, "folder for finetuned.{safetensors,pt} (default: --checkpoint)");
    app.add_option("--steps", o.steps, "Adam steps");
    app.add_option("--lr", o.lr, "learning rate");
    app.add_option("--max-ratio", o.max_ratio, "fail unless last loss <= this x first loss");
    app.add_flag("--quiet", o.quiet, "print only the summary");
    CLI11_PARSE(app, argc, argv);
    if (o.out.empty()) o.out = o.checkpoint;
    manual_seed(0);
    try {
        // 1. The checkpoint: index, shards, bfloat16, Hugging Face's key names.
        const StateDict pretrained = load(o.checkpoint);
        auto student = nn::FeedForward::swiglu(o.d_model, o.d_ff, 0.0);
        student->load_state_dict(KeyMap::llama_mlp(kPrefix)(pretrained));
        fmt::print("loaded {} tensors ({}) from '{}'; the MLP's 3 into {}\n", pretrained.size(),
                   dtype_name(pretrained.at(std::string(kPrefix) + "gate_proj.weight").dtype()),
                   o.checkpoint, "FeedForward::swiglu");

        // 2. Fine-tuning in float32.
        auto teacher = make_teacher(*student, o.shift);
        const auto [first, last] = finetune(*student, *teacher, o);

        // 3. Back to PyTorch.
        fs::create_directories(o.out);
        const StateDict saved = as_checkpoint(*student);
        for (const char* name : {"finetuned.safetensors", "finetuned.pt"}) {
            const std::string path = (fs::path(o.out) / name).string();
            save(saved, path);
            check_round_trip(saved, path);
        }
        save(probe(saved, o), (fs::path(o.out) / "probe.safetensors").string());
        fmt::print("loss {:.6f} -> {:.6f} ({:.3f}x) in {} steps; saved bfloat16 {} in '{}'\n",
                   first, last, last / first, o.steps, "finetuned.safetensors and finetuned.pt",
                   o.out);
        if (last > o.max_ratio * first) {
            fmt::print(stderr, "finetune_ffn: the loss fell only to {:.3f}x (expected <= {})\n",
                       last / first, o.max_ratio);
            return 1;
        }
    } catch (const Error& e) {
        fmt::print(stderr, "finetune_ffn: {}\n", e.what());
        return 1;
    }
    return 0;
}
