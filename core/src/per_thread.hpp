// One T per thread, for the caches and free lists that must outlive nothing:
// objects freed during thread exit or by static destructors (a tensor held in
// a static, say) may run after this thread's T is destroyed, and must then
// find no T rather than a dead one.
#pragma once

namespace xg::detail {

// This thread's T, made on first use; nullptr once the thread's T is destroyed.
template <class T>
T* per_thread() {
    thread_local bool gone = false;
    if (gone) return nullptr;
    thread_local struct Owner {
        T value;
        ~Owner() { gone = true; }
    } owner;
    return &owner.value;
}

}  // namespace xg::detail
