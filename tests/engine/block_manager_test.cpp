// block_manager: allocation, growth, and prefix caching of full computed blocks, plus a
// randomized test that checks reference counts and cached contents against a model.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "engine/block_manager.h"
#include "tests/engine/iota_tokens.h"

using namespace conclave::engine;

namespace {

using tokens = std::vector<int32_t>;

using conclave::test::iota_tokens;

sequence make_seq(int64_t id, tokens prompt) {
  return sequence(id, std::move(prompt), sampling_params{});
}

/// Simulates a step that computed every token of `s`.
void compute_all(block_manager& bm, sequence& s) {
  s.num_computed = s.size();
  bm.mark_computed(s);
}

size_t distinct(const std::vector<int32_t>& v) {
  return std::set<int32_t>(v.begin(), v.end()).size();
}

}  // namespace

TEST_CASE("allocate takes ceil(len / block_size) distinct blocks, deallocate returns them",
          "[block_manager]") {
  block_manager bm(8, 4);
  CHECK(bm.num_blocks() == 8);
  CHECK(bm.block_size() == 4);
  CHECK(bm.num_free_blocks() == 8);

  auto a = make_seq(1, iota_tokens(10));
  REQUIRE(bm.can_allocate(a));
  bm.allocate(a);
  CHECK(a.block_table.size() == 3);
  CHECK(distinct(a.block_table) == 3);
  CHECK(a.num_computed == 0);
  CHECK(bm.num_free_blocks() == 5);
  for (int32_t id : a.block_table) {
    CHECK(id >= 0);
    CHECK(id < 8);
    CHECK(bm.ref_count(id) == 1);
  }

  auto b = make_seq(2, iota_tokens(8, 100));  // exactly two blocks
  bm.allocate(b);
  CHECK(b.block_table.size() == 2);
  CHECK(bm.num_free_blocks() == 3);
  std::vector<int32_t> all = a.block_table;
  all.insert(all.end(), b.block_table.begin(), b.block_table.end());
  CHECK(distinct(all) == 5);

  auto c = make_seq(3, iota_tokens(1, 500));
  bm.allocate(c);
  CHECK(c.block_table.size() == 1);
  CHECK(bm.num_free_blocks() == 2);

  const auto a_table = a.block_table;
  bm.deallocate(a);
  CHECK(a.block_table.empty());
  CHECK(a.num_computed == 0);
  CHECK(bm.num_free_blocks() == 5);
  for (int32_t id : a_table) CHECK(bm.ref_count(id) == 0);
  bm.deallocate(b);
  bm.deallocate(c);
  CHECK(bm.num_free_blocks() == 8);
  CHECK_THROWS(block_manager(0, 4));
  CHECK_THROWS(block_manager(4, 0));
}

TEST_CASE("can_allocate is false without enough free blocks", "[block_manager]") {
  block_manager bm(3, 4);
  auto big = make_seq(1, iota_tokens(13));  // 4 blocks
  CHECK_FALSE(bm.can_allocate(big));
  auto fits = make_seq(2, iota_tokens(12));  // 3 blocks
  CHECK(bm.can_allocate(fits));
  bm.allocate(fits);
  CHECK(bm.num_free_blocks() == 0);
  auto one = make_seq(3, iota_tokens(1));
  CHECK_FALSE(bm.can_allocate(one));
  CHECK_THROWS(bm.allocate(one));
  bm.deallocate(fits);
  CHECK(bm.can_allocate(one));
}

TEST_CASE("grow adds blocks once appended tokens cross a block boundary", "[block_manager]") {
  block_manager bm(4, 4);
  auto s = make_seq(1, iota_tokens(7));
  bm.allocate(s);
  CHECK(s.block_table.size() == 2);
  CHECK(bm.blocks_missing(s) == 0);
  s.append(50);  // 8 tokens: still two blocks
  CHECK(bm.blocks_missing(s) == 0);
  s.append(51);  // 9 tokens: needs a third
  CHECK(bm.blocks_missing(s) == 1);
  CHECK(bm.can_grow(s));
  bm.grow(s);
  CHECK(s.block_table.size() == 3);
  CHECK(distinct(s.block_table) == 3);
  CHECK(bm.blocks_missing(s) == 0);
  CHECK(bm.num_free_blocks() == 1);
  for (int i = 0; i < 3; ++i) s.append(60 + i);  // 12 tokens
  CHECK(bm.blocks_missing(s) == 0);
  for (int i = 0; i < 5; ++i) s.append(70 + i);  // 17 tokens: 5 blocks, only 4 exist
  CHECK(bm.blocks_missing(s) == 2);
  CHECK_FALSE(bm.can_grow(s));
  bm.deallocate(s);
  CHECK(bm.num_free_blocks() == 4);
}

TEST_CASE("prefix caching shares full computed blocks of an identical prefix", "[block_manager]") {
  const int32_t bs = 4;
  block_manager bm(16, bs);
  tokens pa = iota_tokens(10);  // blocks [1..4] [5..8] [9 10]
  auto a = make_seq(1, pa);
  bm.allocate(a);
  compute_all(bm, a);
  CHECK(bm.num_free_blocks() == 13);

  SECTION("same first two blocks, different tail") {
    tokens pb(pa.begin(), pa.begin() + 8);
    pb.insert(pb.end(), {99, 98, 97});
    auto b = make_seq(2, pb);
    bm.allocate(b);
    REQUIRE(b.block_table.size() == 3);
    CHECK(b.block_table[0] == a.block_table[0]);
    CHECK(b.block_table[1] == a.block_table[1]);
    CHECK(b.block_table[2] != a.block_table[2]);
    CHECK(bm.ref_count(a.block_table[0]) == 2);
    CHECK(bm.ref_count(a.block_table[1]) == 2);
    CHECK(bm.ref_count(a.block_table[2]) == 1);
    CHECK(bm.ref_count(b.block_table[2]) == 1);
    CHECK(b.num_computed == 8);
    CHECK(b.num_uncomputed() == 3);
    CHECK(bm.num_free_blocks() == 12);
    bm.deallocate(a);
    CHECK(bm.ref_count(b.block_table[0]) == 1);
    CHECK(bm.num_free_blocks() == 13);
    bm.deallocate(b);
    CHECK(bm.num_free_blocks() == 16);
  }
  SECTION("a mismatch in the first block shares nothing, even with equal later blocks") {
    tokens pb = pa;
    pb[0] = 42;
    auto b = make_seq(2, pb);
    bm.allocate(b);
    CHECK(b.num_computed == 0);
    for (int32_t id : b.block_table) CHECK(bm.ref_count(id) == 1);
    CHECK(bm.num_free_blocks() == 10);
  }
  SECTION("a shorter prompt shares only blocks ending before its last token") {
    auto b = make_seq(2, tokens(pa.begin(), pa.begin() + 5));  // [1..4] [5]
    bm.allocate(b);
    CHECK(b.block_table[0] == a.block_table[0]);
    CHECK(b.block_table[1] != a.block_table[1]);
    CHECK(b.num_computed == 4);
  }
}

TEST_CASE("the block holding the last token is never shared", "[block_manager]") {
  const int32_t bs = 4;
  block_manager bm(16, bs);
  const tokens p = iota_tokens(3 * bs);
  auto a = make_seq(1, p);
  bm.allocate(a);
  compute_all(bm, a);
  auto b = make_seq(2, p);  // identical, a multiple of the block size
  bm.allocate(b);
  REQUIRE(b.block_table.size() == 3);
  CHECK(b.block_table[0] == a.block_table[0]);
  CHECK(b.block_table[1] == a.block_table[1]);
  CHECK(b.block_table[2] != a.block_table[2]);
  CHECK(bm.ref_count(a.block_table[2]) == 1);
  CHECK(b.num_computed == 2 * bs);
  CHECK(b.num_uncomputed() == 4);

  auto c = make_seq(3, tokens(p.begin(), p.begin() + 10));  // identical prefix, partial tail
  bm.allocate(c);
  CHECK(c.num_computed == 2 * bs);
  CHECK(bm.ref_count(a.block_table[0]) == 3);
  CHECK(bm.num_free_blocks() == 16 - 3 - 1 - 1);
}

TEST_CASE("no sharing without prefix caching or without mark_computed", "[block_manager]") {
  const tokens p = iota_tokens(10);
  SECTION("prefix caching disabled") {
    block_manager bm(16, 4, false);
    auto a = make_seq(1, p);
    bm.allocate(a);
    compute_all(bm, a);
    auto b = make_seq(2, p);
    bm.allocate(b);
    CHECK(b.num_computed == 0);
    std::vector<int32_t> all = a.block_table;
    all.insert(all.end(), b.block_table.begin(), b.block_table.end());
    CHECK(distinct(all) == 6);
    CHECK(bm.num_free_blocks() == 10);
  }
  SECTION("blocks never marked computed") {
    block_manager bm(16, 4);
    auto a = make_seq(1, p);
    bm.allocate(a);
    a.num_computed = a.size();  // but mark_computed is not called
    auto b = make_seq(2, p);
    bm.allocate(b);
    CHECK(b.num_computed == 0);
    CHECK(bm.num_free_blocks() == 10);
  }
  SECTION("only the blocks computed so far are shared") {
    block_manager bm(16, 4);
    auto a = make_seq(1, p);
    bm.allocate(a);
    a.num_computed = 7;  // a chunk covering block 0 and part of block 1
    bm.mark_computed(a);
    auto b = make_seq(2, p);
    bm.allocate(b);
    CHECK(b.block_table[0] == a.block_table[0]);
    CHECK(b.block_table[1] != a.block_table[1]);
    CHECK(b.num_computed == 4);
  }
}

TEST_CASE("freed cached blocks are reused until handed out for other content", "[block_manager]") {
  const int32_t bs = 4;
  const tokens p = iota_tokens(10);
  block_manager bm(5, bs);
  auto a = make_seq(1, p);
  bm.allocate(a);
  compute_all(bm, a);
  const auto a_table = a.block_table;
  bm.deallocate(a);
  CHECK(bm.num_free_blocks() == 5);

  SECTION("a later identical prefix picks the cached blocks back up") {
    auto b = make_seq(2, p);
    bm.allocate(b);
    CHECK(b.block_table[0] == a_table[0]);
    CHECK(b.block_table[1] == a_table[1]);
    CHECK(bm.ref_count(a_table[0]) == 1);
    CHECK(bm.ref_count(a_table[1]) == 1);
    CHECK(b.num_computed == 8);
    CHECK(bm.num_free_blocks() == 2);
    bm.deallocate(b);
    CHECK(bm.num_free_blocks() == 5);
  }
  SECTION("after every block is overwritten the old prefix misses") {
    auto c = make_seq(2, iota_tokens(20, 1000));  // takes all five blocks
    bm.allocate(c);
    compute_all(bm, c);
    bm.deallocate(c);
    auto b = make_seq(3, p);
    bm.allocate(b);
    CHECK(b.num_computed == 0);
    CHECK(bm.num_free_blocks() == 2);
  }
  SECTION("overwriting the second block keeps only the first shareable") {
    // Free list after deallocate(a): the unused blocks, then a's blocks last-to-first, so
    // a 4-block sequence evicts a's tail block and second block but not its first.
    auto c = make_seq(2, iota_tokens(16, 1000));
    bm.allocate(c);
    CHECK(std::count(c.block_table.begin(), c.block_table.end(), a_table[0]) == 0);
    CHECK(std::count(c.block_table.begin(), c.block_table.end(), a_table[1]) == 1);
    bm.deallocate(c);
    auto b = make_seq(3, p);
    bm.allocate(b);
    CHECK(b.block_table[0] == a_table[0]);
    CHECK(b.num_computed == 4);
  }
}

TEST_CASE("randomized allocate/grow/compute/deallocate keeps the books straight",
          "[block_manager]") {
  const int32_t num_blocks = 24, bs = 4;
  for (bool caching : {true, false}) {
    INFO("prefix caching " << caching);
    block_manager bm(num_blocks, bs, caching);
    std::mt19937_64 rng(caching ? 11 : 12);
    auto uniform = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    // What each block holds, as a model of the KV cache.
    std::vector<tokens> content(static_cast<size_t>(num_blocks));
    std::map<int64_t, std::unique_ptr<sequence>> live;
    const std::vector<tokens> stems = {iota_tokens(11), iota_tokens(9, 50), iota_tokens(13)};
    size_t hits = 0;
    int64_t next_id = 0;

    auto check_books = [&] {
      std::vector<int32_t> want(static_cast<size_t>(num_blocks), 0), got;
      for (auto& [id, s] : live) {
        REQUIRE(s->block_table.size() == s->num_blocks(bs));
        for (int32_t b : s->block_table) ++want[static_cast<size_t>(b)];
      }
      for (int32_t b = 0; b < num_blocks; ++b) got.push_back(bm.ref_count(b));
      REQUIRE(got == want);
      REQUIRE(bm.num_free_blocks() == std::count(want.begin(), want.end(), 0));
    };

    for (int op = 0; op < 3000; ++op) {
      const size_t kind = uniform(10);
      if (kind < 3 || live.empty()) {  // a new sequence: a stem prefix plus a random tail
        tokens p(stems[uniform(3)]);
        p.resize(1 + uniform(p.size()));
        for (size_t n = uniform(4); n > 0; --n) p.push_back(static_cast<int32_t>(uniform(3)));
        auto s = std::make_unique<sequence>(next_id++, p, sampling_params{});
        if (!bm.can_allocate(*s)) continue;
        bm.allocate(*s);
        REQUIRE(s->num_computed % bs == 0);
        REQUIRE(s->num_computed < s->size());
        hits += s->num_computed / bs;
        for (size_t i = 0; i < s->num_computed / bs; ++i) {  // hits hold exactly these tokens
          const auto want = s->block_tokens(i, bs);
          CHECK(content[static_cast<size_t>(s->block_table[i])] ==
                tokens(want.begin(), want.end()));
        }
        live.emplace(s->id(), std::move(s));
        continue;
      }
      auto it = std::next(live.begin(), static_cast<long>(uniform(live.size())));
      sequence& s = *it->second;
      if (kind < 6 && s.num_uncomputed() > 0) {  // a step computes a chunk
        const size_t to = s.num_computed + 1 + uniform(s.num_uncomputed());
        for (size_t pos = s.num_computed; pos < to; ++pos) {
          const int32_t b = s.block_table[pos / bs];
          REQUIRE(bm.ref_count(b) == 1);  // never write into a shared block
          auto& c = content[static_cast<size_t>(b)];
          c.resize(pos % bs + 1);
          c[pos % bs] = s.tokens()[pos];
        }
        s.num_computed = to;
        bm.mark_computed(s);
      } else if (kind < 8 && s.num_uncomputed() == 0) {  // sample a token and grow
        s.append(static_cast<int32_t>(uniform(3)));
        if (bm.can_grow(s)) {
          bm.grow(s);
        } else {
          bm.deallocate(s);  // preempted
          live.erase(it);
        }
      } else {
        bm.deallocate(s);
        live.erase(it);
      }
      check_books();
    }
    for (auto& [id, s] : live) bm.deallocate(*s);
    live.clear();
    CHECK(bm.num_free_blocks() == num_blocks);
    for (int32_t b = 0; b < num_blocks; ++b) CHECK(bm.ref_count(b) == 0);
    if (caching) {
      CHECK(hits > 50);
    } else {
      CHECK(hits == 0);
    }
  }
}

TEST_CASE("release_behind_window frees the blocks wholly behind the window", "[block_manager]") {
  for (bool caching : {false, true}) {
    INFO("prefix caching " << caching);
    block_manager bm(16, 4, caching);
    auto s = make_seq(1, iota_tokens(30));  // 8 blocks
    bm.allocate(s);
    REQUIRE(bm.num_free_blocks() == 8);
    s.num_computed = 10;
    bm.mark_computed(s);
    // Window 6: the next query (position 10) reads keys 5..10; blocks 0 (keys 0-3) only.
    CHECK(bm.release_behind_window(s, 6) == 1);
    CHECK(s.block_table[0] == block_manager::kReleased);
    CHECK(s.block_table[1] != block_manager::kReleased);
    CHECK(bm.num_free_blocks() == 9);
    CHECK(bm.release_behind_window(s, 6) == 0);  // idempotent
    compute_all(bm, s);                          // num_computed 30: keys >= 25 are read
    CHECK(bm.release_behind_window(s, 6) == 5);  // blocks 1..5 (keys 4..23)
    CHECK(bm.num_free_blocks() == 14);
    CHECK(bm.blocks_to_offload(s) == 2);
    // More tokens: the table grows past the released entries.
    s.append(99);
    s.append(100);
    s.append(101);
    CHECK(bm.blocks_missing(s) == 1);
    bm.grow(s);
    s.num_computed = s.size();
    bm.mark_computed(s);
    bm.deallocate(s);  // released entries are skipped: no double free
    CHECK(bm.num_free_blocks() == 16);
  }
}

TEST_CASE("blocks released behind a window stay reusable prefix-cache entries", "[block_manager]") {
  block_manager bm(16, 4, true);
  auto a = make_seq(1, iota_tokens(20));
  bm.allocate(a);
  compute_all(bm, a);
  CHECK(bm.release_behind_window(a, 4) == 4);  // keys < 17: blocks 0..3
  // A second sequence with the same first 16 tokens hits all four released blocks.
  auto b = make_seq(2, iota_tokens(18));
  bm.allocate(b);
  CHECK(b.num_computed == 16);
  for (size_t i = 0; i < 4; ++i) CHECK(bm.ref_count(b.block_table[i]) == 1);
  // The chain hash continues across released entries: a's later blocks still register
  // under the hashes a fresh sequence computes.
  a.append(21);
  a.append(22);
  a.append(23);
  a.append(24);
  bm.grow(a);
  compute_all(bm, a);
  auto c = make_seq(3, iota_tokens(25));
  bm.deallocate(b);
  bm.allocate(c);
  CHECK(c.num_computed == 24);
}

TEST_CASE("swap out and in skip the blocks released behind a window", "[block_manager]") {
  block_manager bm(12, 4, true, 8);
  auto s = make_seq(1, iota_tokens(24));  // 6 blocks
  bm.allocate(s);
  compute_all(bm, s);
  CHECK(bm.release_behind_window(s, 8) == 4);  // keys < 17
  std::vector<conclave::gpu::kv_block_copy> out, in;
  REQUIRE(bm.can_swap_out(s));
  bm.swap_out(s, out);
  CHECK(out.size() == 2);  // only the held blocks travel
  CHECK(bm.num_free_host_blocks() == 6);
  REQUIRE(s.host_table.size() == 6);
  CHECK(std::count(s.host_table.begin(), s.host_table.end(), block_manager::kReleased) == 4);
  CHECK(bm.num_free_blocks() == 12);
  REQUIRE(bm.can_swap_in(s));
  bm.swap_in(s, in);
  CHECK(in.size() == 2);
  REQUIRE(s.block_table.size() == 6);
  CHECK(std::count(s.block_table.begin(), s.block_table.end(), block_manager::kReleased) == 4);
  CHECK(bm.num_free_blocks() == 10);
  bm.end_transfers();
  CHECK(bm.num_free_host_blocks() == 8);
  bm.mark_computed(s);  // re-registers the held blocks across the released ones
  bm.deallocate(s);
  CHECK(bm.num_free_blocks() == 12);
}

TEST_CASE("host prefix tier: evicted cached blocks are stored on the host and hit back",
          "[block_manager][prefix]") {
  block_manager bm(4, 4, true, 4, 4);
  auto a = make_seq(1, iota_tokens(12));  // 3 blocks, 2 of them shareable full ones
  bm.allocate(a);
  compute_all(bm, a);
  bm.deallocate(a);  // all cached, in the free list
  conclave::gpu::kv_transfer t;
  bm.take_copies(t);
  CHECK(t.empty());
  // Another prompt takes all 4 blocks: the 3 hashed ones are stored on the host first.
  auto b = make_seq(2, iota_tokens(16, 100));
  bm.allocate(b);
  bm.take_copies(t);
  CHECK(t.to_host.size() == 3);
  CHECK(t.to_device.empty());
  CHECK(bm.host_prefix_stores() == 3);
  CHECK(bm.num_host_prefix_blocks() == 3);
  CHECK(bm.num_free_host_blocks() == 1);  // stored this step: not handed out yet
  bm.end_transfers();
  CHECK(bm.num_free_host_blocks() == 4);  // evictable now
  compute_all(bm, b);
  bm.deallocate(b);
  // a's prompt again: its two leading full blocks come back from the host.
  auto c = make_seq(3, iota_tokens(12));
  bm.allocate(c);
  CHECK(c.num_computed == 8);
  conclave::gpu::kv_transfer u;
  bm.take_copies(u);
  REQUIRE(u.to_device.size() == 2);
  CHECK(u.to_device[0].device_block == c.block_table[0]);
  CHECK(u.to_device[1].device_block == c.block_table[1]);
  CHECK(bm.host_prefix_hits() == 2);
  // The hits' host blocks are busy until the copies ran; c's blocks are prefix entries again.
  auto d = make_seq(4, iota_tokens(12));
  bm.allocate(d);
  CHECK(d.num_computed == 8);
  CHECK(bm.ref_count(c.block_table[0]) == 2);
  bm.end_transfers();
}

TEST_CASE("host prefix tier: swaps take the tier's blocks when the pool is short",
          "[block_manager][prefix]") {
  block_manager bm(8, 4, true, 2, 2);
  auto a = make_seq(1, iota_tokens(12));
  bm.allocate(a);
  compute_all(bm, a);
  bm.deallocate(a);
  auto b = make_seq(2, iota_tokens(32, 100));  // takes all 8 blocks: stores 2 of a's 3
  bm.allocate(b);
  conclave::gpu::kv_transfer t;
  bm.take_copies(t);
  CHECK(t.to_host.size() == 2);
  bm.end_transfers();
  CHECK(bm.num_host_prefix_blocks() == 2);
  b.num_computed = 8;
  bm.mark_computed(b);
  std::vector<conclave::gpu::kv_block_copy> out;
  REQUIRE(bm.can_swap_out(b));  // 2 blocks computed, 2 tier blocks to take
  bm.swap_out(b, out);
  CHECK(out.size() == 2);
  CHECK(bm.num_host_prefix_blocks() == 0);
}
