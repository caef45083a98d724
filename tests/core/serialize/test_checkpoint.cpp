// Checkpoints resume training bit for bit: model, optimizer state and the
// random generator (so dropout masks continue where they left off).
#include <filesystem>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_checkpoint {

namespace {

struct Run {
    std::shared_ptr<xg::nn::FeedForward> model;
    std::shared_ptr<xg::optim::Adam> optimizer;
    xg::Tensor x, y;

    Run() {
        xg::manual_seed(5);
        model = xg::nn::FeedForward::swiglu(6, 12, 0.2);  // dropout draws from the generator
        optimizer = std::make_shared<xg::optim::Adam>(
            model->parameters(), xg::optim::AdamOptions(1e-2).weight_decay(1e-3));
        x = xg::randn({16, 6});
        y = xg::randn({16, 6});
    }

    void train(int steps) {
        for (int i = 0; i < steps; ++i) {
            xg::Tensor loss = xg::mse_loss((*model)(x), y);
            optimizer->zero_grad();
            loss.backward();
            optimizer->step();
        }
    }
};

std::string checkpoint_path() {
    auto dir = std::filesystem::temp_directory_path() /
               ("xgrad-checkpoint-tests" + std::string("-") + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / "run.safetensors").string();
}

}  // namespace

TEST_CASE("train 20 steps equals train 10, checkpoint, load into a fresh run, train 10") {
    Run straight;
    straight.train(20);

    Run first;
    first.train(10);
    xg::save_checkpoint(checkpoint_path(), *first.model, *first.optimizer, 10);

    Run resumed;  // fresh model, optimizer and generator state
    xg::manual_seed(999);
    CHECK(xg::load_checkpoint(checkpoint_path(), *resumed.model, *resumed.optimizer) == 10);
    resumed.train(10);

    auto expected = straight.model->named_parameters();
    auto got = resumed.model->named_parameters();
    REQUIRE(expected.size() == got.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CHECK_MESSAGE(expected[i].second.data<float>() == got[i].second.data<float>(),
                      expected[i].first);
    }
}

TEST_CASE("a checkpoint for another optimizer fails and changes nothing") {
    Run run;
    run.train(3);
    xg::save_checkpoint(checkpoint_path(), *run.model, *run.optimizer, 3);

    auto model = xg::nn::FeedForward::swiglu(6, 12, 0.2);
    xg::StateDict before;
    for (const auto& [key, t] : model->state_dict()) before.insert_or_assign(key, t.clone());
    xg::optim::SGD sgd(model->parameters(), xg::optim::SGDOptions(0.1));
    CHECK_THROWS_AS(xg::load_checkpoint(checkpoint_path(), *model, sgd), xg::Error);
    for (const auto& entry : model->state_dict()) {
        const std::string& key = entry.first;  // a plain name: clang 14 cannot capture bindings
        CHECK_MESSAGE(entry.second.data<float>() == before.at(key).data<float>(), key);
    }
}

TEST_CASE("a plain safetensors file is not taken for a checkpoint") {
    std::string path = checkpoint_path();
    xg::save(xg::StateDict{{"w", xg::ones({2})}}, path);
    Run run;
    CHECK_THROWS_WITH_AS(xg::load_checkpoint(path, *run.model, *run.optimizer),
                         doctest::Contains("is not an xgrad checkpoint"), xg::Error);
}

}  // namespace core_serialize_test_checkpoint
