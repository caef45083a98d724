// RemovableHandle: what every register_*_hook returns; remove() detaches the hook.
// It owns only a callback, so a handle outliving its tensor or module is harmless.
#pragma once

#include <functional>
#include <utility>

namespace xg {

class RemovableHandle {
public:
    RemovableHandle() = default;
    explicit RemovableHandle(std::function<void()> remover) : remover_(std::move(remover)) {}

    // Idempotent: a second call does nothing.
    void remove() {
        if (remover_) std::exchange(remover_, nullptr)();
    }

private:
    std::function<void()> remover_;
};

}  // namespace xg
