// The thread pool behind xg::parallel_for. Its workers sleep on a condition
// variable between jobs, never spinning, so they do not take cycles from
// OpenBLAS's threads (which spin, yielding, for a while after each GEMM).
//
// One job at a time: a parallel_for that finds the pool busy (another thread's
// job, or its own, nested) runs inline. The pool is sized lazily to
// get_num_threads() - 1 workers, and rebuilt after a fork (a child has none of
// its parent's threads).
#include "xgrad/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

#include "xgrad/tensor.hpp"

namespace xg::detail {

namespace {

struct Job {
    std::int64_t begin, end, chunk, tasks;
    const void* f;
    ChunkFn run;
};

class Pool {
public:
    explicit Pool(int workers) : pid_(::getpid()) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    ~Pool() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }

    int workers() const { return static_cast<int>(threads_.size()); }
    pid_t pid() const { return pid_; }

    // Runs every task of `job`, on the workers and the calling thread.
    void run(const Job& job) {
        {
            std::lock_guard lock(mutex_);
            job_ = &job;
            next_task_.store(0, std::memory_order_relaxed);
            ++generation_;
        }
        wake_.notify_all();
        run_tasks(job);
        // Every task is taken; wait for the workers still running one. A
        // worker that wakes after this finds no job and sleeps again.
        std::unique_lock lock(mutex_);
        done_.wait(lock, [this] { return active_ == 0; });
        job_ = nullptr;
    }

private:
    void run_tasks(const Job& job) {
        for (std::int64_t t;
             (t = next_task_.fetch_add(1, std::memory_order_relaxed)) < job.tasks;) {
            const std::int64_t b = job.begin + t * job.chunk;
            job.run(job.f, b, std::min(job.end, b + job.chunk));
        }
    }

    void work() {
        std::uint64_t seen = 0;
        for (;;) {
            const Job* job = nullptr;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                if (job_ == nullptr) continue;  // woke after that job ended
                job = job_;
                ++active_;
            }
            run_tasks(*job);
            std::lock_guard lock(mutex_);
            if (--active_ == 0) done_.notify_one();
        }
    }

    const pid_t pid_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const Job* job_ = nullptr;  // guarded by mutex_, as are the three below
    std::uint64_t generation_ = 0;
    int active_ = 0;
    bool stop_ = false;
    std::atomic<std::int64_t> next_task_{0};
    std::vector<std::thread> threads_;
};

std::mutex pool_mutex;       // held by the one thread running a job
std::unique_ptr<Pool> pool;  // guarded by pool_mutex
thread_local bool in_job = false;

// The pool with `workers` workers, made or remade under pool_mutex.
Pool& pool_of(int workers) {
    if (pool && pool->pid() != ::getpid()) (void)pool.release();  // its threads are the parent's
    if (!pool || pool->workers() != workers) pool = std::make_unique<Pool>(workers);
    return *pool;
}

}  // namespace

void parallel_run(std::int64_t begin, std::int64_t end, std::int64_t grain_size, std::int64_t align,
                  const void* f, ChunkFn run) {
    if (begin >= end) return;
    const std::int64_t n = end - begin, threads = get_num_threads();
    const std::int64_t grain = std::max<std::int64_t>(grain_size, 1);
    if (threads < 2 || n < 2 * grain || in_job) return run(f, begin, end);
    std::unique_lock lock(pool_mutex, std::try_to_lock);
    if (!lock.owns_lock()) return run(f, begin, end);  // another thread's job holds the pool
    // One chunk per thread, rounded up to a multiple of align.
    const std::int64_t tasks = std::min(threads, n / grain);
    const std::int64_t a = std::max<std::int64_t>(align, 1);
    const std::int64_t chunk = ((n + tasks - 1) / tasks + a - 1) / a * a;
    const Job job{begin, end, chunk, (n + chunk - 1) / chunk, f, run};
    struct InJob {  // cleared however run() ends (making the pool's threads may throw)
        InJob() { in_job = true; }
        ~InJob() { in_job = false; }
    } in_this_job;
    pool_of(static_cast<int>(threads) - 1).run(job);
}

}  // namespace xg::detail
