// Module traversal: every named_* walk, its order, prefixes and duplicate
// handling, against the orders PyTorch produced (reference/gen_reference.py).
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"
#include "nn/module/reference/reference_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_traversal {

using mt::names_of;
using Names = std::vector<std::string>;

TEST_CASE("Module traversal: named_parameters order, prefix, recurse, shared parameter once") {
    auto net = std::make_shared<mt::Net>();
    // "tied" is a.weight: listed once, under the name met first (the root's own parameters
    // come before its children's), and a2 (the same module as a) adds nothing.
    CHECK(names_of(net->named_parameters()) == module_ref::net_named_parameters);
    CHECK(names_of(net->named_parameters("model")) == module_ref::net_named_parameters_prefix);
    CHECK(names_of(net->named_parameters("", false)) == module_ref::net_named_parameters_local);
    CHECK(net->named_parameters()[0].second.impl() == net->a->weight.impl());
    CHECK(net->parameters().size() == module_ref::net_named_parameters.size());
    CHECK(net->parameters()[1].impl() == net->a->bias.impl());

    auto deep = std::make_shared<mt::Deep>();
    CHECK(names_of(deep->named_parameters()) == module_ref::deep_named_parameters);
    // No bias: head.bias is undefined and skipped.
    CHECK(deep->parameters().size() == 8);
}

TEST_CASE("Module traversal: named_parameters(remove_duplicate=false) lists every path") {
    // Hand-derived (torch 1.13 lacks remove_duplicate here): PyTorch 2.x walks
    // named_modules(remove_duplicate=False) and keeps every member it meets.
    auto net = std::make_shared<mt::Net>();
    Names expected{"tied",        "a.weight",  "a.bias",    "b.gain",
                   "b.fc.weight", "b.fc.bias", "a2.weight", "a2.bias"};
    CHECK(names_of(net->named_parameters("", true, false)) == expected);
    CHECK(names_of(net->named_buffers("", true, false)) ==
          Names{"a.running_mean", "a.scratch", "b.count", "b.tmp", "b.fc.running_mean",
                "b.fc.scratch", "a2.running_mean", "a2.scratch"});
}

TEST_CASE("Module traversal: named_buffers include non-persistent buffers") {
    auto net = std::make_shared<mt::Net>();
    CHECK(names_of(net->named_buffers()) == module_ref::net_named_buffers);
    CHECK(names_of(net->named_buffers("x")) == Names{"x.a.running_mean", "x.a.scratch", "x.b.count",
                                                     "x.b.tmp", "x.b.fc.running_mean",
                                                     "x.b.fc.scratch"});
    CHECK(net->named_buffers("", false).empty());
    CHECK(names_of(net->b->named_buffers("", false)) == Names{"count", "tmp"});
    CHECK(net->buffers().size() == module_ref::net_named_buffers.size());
}

TEST_CASE("Module traversal: children and named_children skip duplicates and empty slots") {
    auto net = std::make_shared<mt::Net>();
    CHECK(names_of(net->named_children()) == module_ref::net_named_children);
    auto children = net->children();
    REQUIRE(children.size() == 3);
    CHECK(children[0] == net->a);
    CHECK(children[1] == net->act);
    CHECK(children[2] == net->b);
}

TEST_CASE("Module traversal: named_modules is depth-first, self first, named by the prefix") {
    auto net = std::make_shared<mt::Net>();
    auto named = net->named_modules();
    CHECK(names_of(named) == module_ref::net_named_modules);
    CHECK(named[0].second == net);
    CHECK(named[4].second == net->b->fc);
    CHECK(names_of(net->named_modules("m")) == module_ref::net_named_modules_prefix);
    // A module registered twice is listed under both names when duplicates are kept.
    auto all = net->named_modules("", false);
    CHECK(names_of(all) == module_ref::net_named_modules_all);
    CHECK(all[5].second == net->a);
    CHECK(net->modules().size() == 5);

    auto deep = std::make_shared<mt::Deep>();
    CHECK(names_of(deep->named_modules()) ==
          Names{"", "chain", "chain.0", "chain.1", "chain.2", "block", "block.fc", "head"});
}

TEST_CASE("Module traversal: a const module, or one on the stack, walks the same way") {
    mt::Net net;  // not owned by a shared_ptr: self comes back as a handle that does not own
    const mt::Net& view = net;
    auto named = view.named_modules();
    CHECK(names_of(named) == module_ref::net_named_modules);
    REQUIRE(named[0].second != nullptr);
    CHECK(named[0].second.get() == &net);
    CHECK(named[0].second.use_count() == 0);
    CHECK(view.modules()[4] == net.b->fc);
    for (const auto& module : view.modules()) CHECK_FALSE(module->name().empty());
}

TEST_CASE("Module traversal: a leaf module walks only itself") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2, false);
    CHECK(names_of(lin->named_modules()) == Names{""});
    CHECK(lin->children().empty());
    CHECK(names_of(lin->named_parameters()) == Names{"weight"});
    CHECK(names_of(lin->named_parameters("lin")) == Names{"lin.weight"});
}

}  // namespace nn_module_test_traversal
