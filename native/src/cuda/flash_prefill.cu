// Lesson 09, prefill: FlashAttention over the paged KV pool, for a packed
// varlen causal step with grouped-query attention. Versions side by side:
//
//   v1  the algorithm with scalar arithmetic. A block takes 32 query rows of
//       one head; it walks the visible keys 32 at a time, staging each K and V
//       tile in shared memory (read through the block table), and keeps the
//       running maximum, sum and output of each row (online softmax), so the
//       score matrix never leaves the chip.
//   v2  the same walk on tensor cores (mma.sync m16n8k16, bf16/f16 in, float32
//       accumulators). A block of 4 warps takes 64 rows, 16 per warp; the rows
//       are (query token, query head) pairs of one KV head, so the group's
//       heads share every K/V tile. S = Q K^T stays in registers, is turned into
//       probabilities there and fed back as the A operand of P V. K_{j+1} is
//       copied (cp.async) while P V_j runs, V_j while Q K_j^T runs.
//   v3  v2 with 32 rows per warp (128 per block): every K and V fragment a warp
//       reads from shared memory feeds two mma's, halving the shared-memory bytes
//       per FLOP, which bound v2 (16 FLOP per byte read; Hopper's shared memory
//       gives 128 bytes per clock per SM). Q is re-read from shared memory per
//       k-step instead of held in registers, which 32 rows of output need.
//       Tiles of 32 keys, so 32 rows of S fit the registers beside the output.
//   v4  v3 with K and V in a ring of 3 tile buffers: the copies of tile j+2 are
//       in flight while tiles j and j+1 are computed, and one barrier per tile
//       instead of two.
//   v5  v4 with FlashAttention-2's tile (128 rows x 64 keys) in a ring of 2, every
//       ldmatrix issued one mma step before its use, the softmax as one FFMA and
//       one ex2 per score, the mask only where a tile crosses a warp's diagonal
//       (its own kernel, prefill_v5_kernel, below v2-v4's).
//
// All: grid (heads, sequences, row tiles), the row tile slowest, so the tiles
// with the most keys (the last rows) of every head and sequence start first; rows past a sequence's query run and keys past its context are zero-
// filled and masked, so any length works. Keys come through the block table:
// a cached prefix (context_len > q_len) needs nothing special.
#include "flash_common.cuh"

namespace aios::AIOS_FLASH_NS {
namespace flash {
namespace {

// ------------------------------------------------------------------ v1: scalar

constexpr int kV1Rows = 32, kV1Keys = 32, kV1Threads = 128;

template <int D> constexpr size_t v1_smem() {
  return sizeof(float) * (size_t(kV1Rows) * (D + 1) + size_t(kV1Keys) * (D + 1) + size_t(kV1Keys) * D +
                          size_t(kV1Rows) * (kV1Keys + 1));
}

// Thread t owns query row t/4 of the tile; the 4 threads of a quad split that
// row's keys (t%4, t%4+4, ...) for the scores and its dimensions for the output.
template <class T, int D> __global__ void __launch_bounds__(kV1Threads, 1) prefill_v1_kernel(PagedAttentionArgs a, float scale_log2, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  constexpr int BM = kV1Rows, BN = kV1Keys, kDimsPerThread = D / 4, kKeysPerThread = BN / 4, VEC = kVec<T>;
  float* Qs = reinterpret_cast<float*>(smem_base());  // [BM][D+1], pre-scaled by scale*log2(e)
  float* Ks = Qs + BM * (D + 1);                      // [BN][D+1]
  float* Vs = Ks + BN * (D + 1);                      // [BN][D]
  float* Ps = Vs + BN * D;                            // [BM][BN+1]

  const int b = int(blockIdx.y), h = int(blockIdx.x);
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  const int64_t ctx = ldg(a.context_lens + b);
  const int64_t m0 = int64_t(gridDim.z - 1 - blockIdx.z) * BM;  // the tiles with the most keys start first
  if (m0 >= q_len) return;
  const int tid = int(threadIdx.x), r = tid / 4, quad = tid % 4;
  const int64_t Hq = a.q_heads, Hkv = a.kv_heads, kvh = h / (Hq / Hkv);
  const int64_t first_pos = ctx - q_len;  // position of the sequence's first query
  const int64_t pos = first_pos + m0 + r;  // this thread's row; keys 0..pos are visible
  const int64_t n_end = first_pos + (m0 + BM < q_len ? m0 + BM : q_len);  // keys the tile's last row sees
  const int32_t* table = a.block_tables + int64_t(b) * a.max_blocks_per_seq;
  const T* q = static_cast<const T*>(a.q);
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);

  for (int i = tid; i < BM * (D / VEC); i += kV1Threads) {
    const int row = i / (D / VEC), c = (i % (D / VEC)) * VEC;
    float f[VEC] = {};
    if (m0 + row < q_len) unpack16<T>(ldg16(q + ((q_start + m0 + row) * Hq + h) * D + c), f);
    for (int e = 0; e < VEC; ++e) Qs[row * (D + 1) + c + e] = f[e] * scale_log2;
  }

  float acc[kDimsPerThread];  // output dims quad + 4i of row r
  for (int i = 0; i < kDimsPerThread; ++i) acc[i] = 0.0f;
  float m_run = kNegInf, l_run = 0.0f;  // running max (log2 units) and this thread's part of the row sum

  for (int64_t n0 = 0; n0 < n_end; n0 += BN) {
    __syncthreads();  // the previous tile's K, V and P are no longer read
    for (int i = tid; i < BN * (D / VEC); i += kV1Threads) {
      const int row = i / (D / VEC), c = (i % (D / VEC)) * VEC;
      const int64_t key = n0 + row;
      float fk[VEC] = {}, fv[VEC] = {};
      if (key < n_end) {
        const int64_t off = (int64_t(slot_in(table, uint32_t(key), bix)) * Hkv + kvh) * D + c;
        unpack16<T>(ldg16(kc + off), fk);
        unpack16<T>(ldg16(vc + off), fv);
      }
      for (int e = 0; e < VEC; ++e) {
        Ks[row * (D + 1) + c + e] = fk[e];
        Vs[row * D + c + e] = fv[e];
      }
    }
    __syncthreads();

    // scores of row r against keys quad + 4j, in log2 units, masked past the row's position
    float s[kKeysPerThread];
    float mx = kNegInf;
    for (int j = 0; j < kKeysPerThread; ++j) {
      const int col = quad + 4 * j;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += Qs[r * (D + 1) + d] * Ks[col * (D + 1) + d];
      s[j] = n0 + col <= pos && n0 + col < n_end ? dot : kNegInf;
      mx = fmaxf(mx, s[j]);
    }
    float m_use;
    const float alpha = online_max_step(m_run, quad_max(mx), m_use);
    float psum = 0.0f;
    for (int j = 0; j < kKeysPerThread; ++j) {
      const float p = exp2_fast(s[j] - m_use);
      Ps[r * (BN + 1) + quad + 4 * j] = p;
      psum += p;
    }
    l_run = l_run * alpha + psum;
    for (int i = 0; i < kDimsPerThread; ++i) acc[i] *= alpha;
    __syncthreads();  // the quad's probabilities are all in Ps

    for (int col = 0; col < BN; ++col) {
      const float p = Ps[r * (BN + 1) + col];
      for (int i = 0; i < kDimsPerThread; ++i) acc[i] += p * Vs[col * D + quad + 4 * i];
    }
  }

  const float l = quad_sum(l_run);
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  if (m0 + r < q_len) {
    T* o = static_cast<T*>(a.out) + ((q_start + m0 + r) * Hq + h) * D;
    for (int i = 0; i < kDimsPerThread; ++i) stg(o + quad + 4 * i, from_f<T>(acc[i] * inv));
  }
}

// ------------------------------------------------------------------ v2, v3: tensor cores

// A warp holds MT m16 tiles of rows (v2: 1, its Q fragments kept in registers; v3: 2, Q
// re-read from shared memory each k-step, so that every K and V fragment a warp loads from
// shared memory feeds MT mma's: v3 reads half the shared-memory bytes per FLOP of v2).
// BN keys per tile (v3: 32, so that 32 rows of S fit the registers beside the output).
constexpr int kTcWarps = 4, kTcThreads = 32 * kTcWarps;

template <int MT> constexpr int tc_rows() { return 16 * MT * kTcWarps; }
template <int D> constexpr int tc_stride() { return D + 8; }  // 16 bytes of padding per row: ldmatrix is conflict-free
// STAGES 1: one K and one V buffer (FA2's order: V_j lands during Q K_j^T, K_{j+1} during P V_j,
// two barriers per tile); STAGES >= 2: K and V of a tile together in a ring of STAGES buffers,
// tile j+STAGES-1 copied from the end of Q K_j^T on, one barrier per tile.
template <int D, int MT, int BN, int STAGES> constexpr size_t tc_smem() {
  return 2 * size_t(tc_stride<D>()) * (tc_rows<MT>() + 2 * BN * STAGES);
}

template <class T, int D, int MT, int BN, int STAGES>
__global__ void __launch_bounds__(kTcThreads, (D == 64 ? 2 : 1)) prefill_tc_kernel(PagedAttentionArgs a, float scale_log2, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  constexpr int BM = tc_rows<MT>(), S = tc_stride<D>(), CHUNKS = D / 8;  // 16-byte chunks per row
  constexpr bool kQInRegs = MT == 1;
  [[maybe_unused]] constexpr int kKsUnroll = kQInRegs ? D / 16 : 1;
  T* Qs = reinterpret_cast<T*>(smem_base());  // [BM][S]
  T* KVs = Qs + BM * S;                        // [STAGES][K, V][BN][S]

  const int b = int(blockIdx.y);
  const int64_t kvh = blockIdx.x, Hq = a.q_heads, Hkv = a.kv_heads, group = Hq / Hkv;
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  const int64_t ctx = ldg(a.context_lens + b);
  const int64_t rows = q_len * group;                             // packed rows: (token r / group, head r % group)
  const int64_t m0 = int64_t(gridDim.z - 1 - blockIdx.z) * BM;   // the tiles with the most keys start first
  if (m0 >= rows) return;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  // Positions and keys fit 32 bits (the binding checks the contexts do): cheaper than 64-bit math.
  const int first_pos = int(ctx - q_len);
  const int64_t last_row = (m0 + BM < rows ? m0 + BM : rows) - 1;
  const int n_end = first_pos + int(last_row / group) + 1;      // keys the tile's last row sees
  const int n_nomask = first_pos + int(m0 / group) + 1;         // keys every row of the tile sees
  const int n_tiles = int((n_end + BN - 1) / BN);
  const int32_t* table = a.block_tables + int64_t(b) * a.max_blocks_per_seq;
  const T* q = static_cast<const T*>(a.q);
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);

  // Each thread copies BN*CHUNKS/128 chunks per tile: rows tid/CHUNKS + i*(128/CHUNKS), column chunk tid%CHUNKS.
  constexpr int kRowStep = kTcThreads / CHUNKS, kLoads = BN / kRowStep;
  const int ld_row = tid / CHUNKS, ld_col = (tid % CHUNKS) * 8;
#pragma unroll
  for (int i = 0; i < BM / kRowStep; ++i) {
    const int row = ld_row + i * kRowStep;
    const int64_t pr = m0 + row;
    const bool valid = pr < rows;
    const T* src = valid ? q + ((q_start + pr / group) * Hq + kvh * group + pr % group) * D + ld_col : q;
    cp_async16(Qs + row * S + ld_col, src, valid);
  }
  int32_t slots[kLoads];  // pool slots of this thread's K/V rows in a tile (-1: past the context)
  auto locate = [&](int tile) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int key = tile * BN + ld_row + i * kRowStep;
      slots[i] = key < n_end ? slot_in(table, uint32_t(key), bix) : -1;
    }
  };
  auto load = [&](const T* cache, T* dst) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const bool valid = slots[i] >= 0;
      cp_async16(dst + (ld_row + i * kRowStep) * S + ld_col, valid ? cache + (slots[i] * Hkv + kvh) * D + ld_col : cache, valid);
    }
  };
  auto k_buf = [&](int tile) { return KVs + (STAGES > 1 ? tile % STAGES : 0) * 2 * BN * S; };
  auto v_buf = [&](int tile) { return k_buf(tile) + BN * S; };

  uint32_t qf[kQInRegs ? D / 16 : 1][4];  // (v3: unused)  // v2: this warp's 16 query rows as A fragments, one per 16 dims
  float o[MT][D / 8][4];  // output accumulators: 8 dims per n-tile; [0,1] row g, [2,3] row g+8 of each m-tile
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
  float m_run[MT][2], l_run[MT][2];
  int row_pos[MT][2];
  const int64_t wrow = m0 + warp * 16 * MT;
  const bool warp_active = wrow < rows;  // a warp whose rows are all padding skips the math
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) {
      m_run[mt][h2] = kNegInf;
      l_run[mt][h2] = 0.0f;
      row_pos[mt][h2] = first_pos + int((wrow + mt * 16 + g + 8 * h2) / group);
    }
  const T* q_warp = Qs + (warp * 16 * MT + (lane & 15)) * S + (lane >> 4) * 8;  // + mt*16 rows, + ks*16 dims
  uint32_t pf[MT][BN / 16][4];  // P as A fragments, one per 16 keys

  // S = Q K_j^T, masked and turned into probabilities in registers (online softmax), into pf.
  auto qk_softmax = [&](const T* Kt, int j) {
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
    // v3 keeps this loop rolled (ks only moves addresses there): fully unrolled, the scheduler
    // hoists enough fragment loads to run out of registers.
#pragma unroll(kKsUnroll)
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t qk[MT][4];
      if constexpr (!kQInRegs) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(qk[mt], q_warp + mt * 16 * S + ks * 16);
      }
#pragma unroll
      for (int nt = 0; nt < BN / 8; nt += 2) {
        uint32_t kf[4];  // keys nt*8..nt*8+15, dims ks*16..ks*16+15: B fragments of two n-tiles
        ldmatrix_x4(kf, Kt + (nt * 8 + (lane & 7) + ((lane >> 4) << 3)) * S + ks * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if constexpr (kQInRegs) {
            mma_16816<T>(s[mt][nt], qf[ks], kf[0], kf[1]);
            mma_16816<T>(s[mt][nt + 1], qf[ks], kf[2], kf[3]);
          } else {
            mma_16816<T>(s[mt][nt], qk[mt], kf[0], kf[1]);
            mma_16816<T>(s[mt][nt + 1], qk[mt], kf[2], kf[3]);
          }
        }
      }
    }
    const int n0 = j * BN;
    const bool mask = n0 + BN > n_nomask;
    float alpha[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h2 = 0; h2 < 2; ++h2)
        alpha[mt][h2] = online_softmax_row(s[mt], h2, m_run[mt][h2], l_run[mt][h2], [&](float v, int nt, int e) {
          const int key = n0 + nt * 8 + 2 * t4 + e;
          return mask && (key > row_pos[mt][h2] || key >= n_end) ? kNegInf : v * scale_log2;
        });
    // Once the running maxima settle, most tiles move none of them: skip the output's rescaling
    // (a multiply per accumulator, about one per mma) unless some row of the warp needs it.
    bool moved = false;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) moved |= alpha[mt][0] != 1.0f || alpha[mt][1] != 1.0f;
    if (warp_any(moved))
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          o[mt][i][0] *= alpha[mt][0];
          o[mt][i][1] *= alpha[mt][0];
          o[mt][i][2] *= alpha[mt][1];
          o[mt][i][3] *= alpha[mt][1];
        }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        pf[mt][kk][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pf[mt][kk][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pf[mt][kk][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pf[mt][kk][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
  };
  // O += P V_j
  auto pv = [&](const T* Vt) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t vf[4];  // keys kk*16..+15, dims dp*16..+15, transposed: B fragments of two n-tiles of dims
        ldmatrix_x4_trans(vf, Vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_16816<T>(o[mt][2 * dp], pf[mt][kk], vf[0], vf[1]);
          mma_16816<T>(o[mt][2 * dp + 1], pf[mt][kk], vf[2], vf[3]);
        }
      }
  };

  if constexpr (STAGES == 1) {
    locate(0);
    load(kc, k_buf(0));
    cp_async_commit();
    for (int j = 0; j < n_tiles; ++j) {
      cp_async_wait<0>();
      __syncthreads();  // K_j (and Q) landed for every thread; every warp is done with V_{j-1}
      if constexpr (kQInRegs)
        if (j == 0)
#pragma unroll
          for (int ks = 0; ks < D / 16; ++ks) ldmatrix_x4(qf[ks], q_warp + ks * 16);
      load(vc, v_buf(j));  // slots still locate tile j
      cp_async_commit();
      if (warp_active) qk_softmax(k_buf(j), j);
      cp_async_wait<0>();
      __syncthreads();  // V_j landed; every warp is done with K_j
      if (j + 1 < n_tiles) {
        locate(j + 1);
        load(kc, k_buf(j + 1));
        cp_async_commit();
      }
      if (warp_active) pv(v_buf(j));
    }
  } else {
    // One commit group per tile (empty past the last), so "tile j has landed" is always
    // "at most STAGES-2 groups pending" at the top of iteration j.
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
      if (st < n_tiles) {
        locate(st);
        load(kc, k_buf(st));
        load(vc, v_buf(st));
      }
      cp_async_commit();
    }
    for (int j = 0; j < n_tiles; ++j) {
      cp_async_wait<(STAGES > 1 ? STAGES - 2 : 0)>();
      __syncthreads();  // tile j (and Q) landed for every thread; every warp is done with tile j-1's buffers
      if constexpr (kQInRegs)
        if (j == 0)
#pragma unroll
          for (int ks = 0; ks < D / 16; ++ks) ldmatrix_x4(qf[ks], q_warp + ks * 16);
      if (warp_active) qk_softmax(k_buf(j), j);
      if (j + STAGES - 1 < n_tiles) {  // into the buffers tile j-1 used
        locate(j + STAGES - 1);
        load(kc, k_buf(j + STAGES - 1));
        load(vc, v_buf(j + STAGES - 1));
      }
      cp_async_commit();
      if (warp_active) pv(v_buf(j));
    }
  }

  cp_async_wait<0>();  // nothing is pending on a valid step; a step whose context is shorter than its queries may have a copy left
  if (!warp_active) return;
  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) {
      const int64_t pr = wrow + mt * 16 + g + 8 * h2;
      const float l = quad_sum(l_run[mt][h2]);
      if (pr >= rows) continue;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      uint32_t* dst = reinterpret_cast<uint32_t*>(out + ((q_start + pr / group) * Hq + kvh * group + pr % group) * D + 2 * t4);
#pragma unroll
      for (int i = 0; i < D / 8; ++i) stg(dst + i * 4, pack2<T>(o[mt][i][2 * h2] * inv, o[mt][i][2 * h2 + 1] * inv));
    }
}

// The tensor-core versions: (m-tiles per warp, keys per tile, K/V buffers).
template <int V> struct TcConfig;
template <> struct TcConfig<2> { static constexpr int MT = 1, BN = 64, STAGES = 1; };
template <> struct TcConfig<3> { static constexpr int MT = 2, BN = 32, STAGES = 1; };
template <> struct TcConfig<4> { static constexpr int MT = 2, BN = 32, STAGES = 3; };

// ------------------------------------------------------------------ v5: FA2's tile on v4's ring

// v4's block (4 warps x 32 rows = 128 rows, Q re-read from shared memory, K and V of a tile
// together in a cp.async ring) with:
//   - 64-key tiles in a ring of 2 (v4: 32 keys, 3 buffers): the per-tile costs that do not grow
//     with the keys (barrier, row maxima and their shuffles, the vote, the rescale, the copy
//     bookkeeping) are paid once per 64 keys; 102 KB of shared memory, still 2 blocks per SM.
//   - fragments loaded one step ahead: Q K^T and P V are fully unrolled and each ldmatrix is
//     issued a step (4 mma's) before the mma's that use it, so its latency hides behind the
//     tensor cores (v3/v4 kept the Q K^T loop rolled: every k-step waited on its loads).
//   - the softmax in raw score units: the row maximum is taken before any scaling and
//     p = 2^(s * scale log2 e - m * scale log2 e) is one FFMA and one ex2 (v4: a multiply, a
//     subtract and the ex2); the mask is applied only on tiles that cross the warp's diagonal
//     (a warp-uniform branch), and a warp skips a tile none of its rows can see.
//   - the block-table lookups of tile j+2 made before P V_j and used at the top of the next
//     iteration, so their global-load latency hides behind P V (made after the softmax, not
//     before it: their 8 registers during Q K^T and the softmax made ptxas spill).
constexpr int kV5Warps = 4, kV5Threads = 32 * kV5Warps, kV5Rows = 128, kV5Keys = 64, kV5Stages = 2;
template <int D> constexpr size_t v5_smem() {
  return 2 * size_t(D + 8) * (kV5Rows + 2 * kV5Keys * kV5Stages);
}

template <class T, int D>
__global__ void __launch_bounds__(kV5Threads, (D == 64 ? 2 : 1)) prefill_v5_kernel(PagedAttentionArgs a, float scale_log2, BlockIndex bix) {
  pdl_begin();  // pdl.cuh: first, before any memory is touched
  constexpr int MT = 2, BM = kV5Rows, BN = kV5Keys, STAGES = kV5Stages, S = D + 8, CHUNKS = D / 8;
  constexpr int KS = D / 16, NP = BN / 16, KK = BN / 16, DP = D / 16;  // k-steps of Q K^T, key pairs of n-tiles, k-steps of P V, dim pairs
  T* Qs = reinterpret_cast<T*>(smem_base());  // [BM][S]
  T* KVs = Qs + BM * S;                        // [STAGES][K, V][BN][S]

  const int b = int(blockIdx.y);
  const int64_t kvh = blockIdx.x, Hq = a.q_heads, Hkv = a.kv_heads, group = Hq / Hkv;
  const int64_t q_start = ldg(a.cu_seqlens_q + b), q_len = ldg(a.cu_seqlens_q + b + 1) - q_start;
  const int64_t ctx = ldg(a.context_lens + b);
  const int64_t rows = q_len * group;                            // packed rows: (token r / group, head r % group)
  const int64_t m0 = int64_t(gridDim.z - 1 - blockIdx.z) * BM;  // the tiles with the most keys start first
  if (m0 >= rows) return;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const int first_pos = int(ctx - q_len);
  const int64_t last_row = (m0 + BM < rows ? m0 + BM : rows) - 1;
  const int n_end = first_pos + int(last_row / group) + 1;  // keys the tile's last row sees
  const int n_tiles = (n_end + BN - 1) / BN;
  const int32_t* table = a.block_tables + int64_t(b) * a.max_blocks_per_seq;
  const T* q = static_cast<const T*>(a.q);
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);

  constexpr int kRowStep = kV5Threads / CHUNKS, kLoads = BN / kRowStep;
  const int ld_row = tid / CHUNKS, ld_col = (tid % CHUNKS) * 8;
#pragma unroll
  for (int i = 0; i < BM / kRowStep; ++i) {
    const int row = ld_row + i * kRowStep;
    const int64_t pr = m0 + row;
    const bool valid = pr < rows;
    const T* src = valid ? q + ((q_start + pr / group) * Hq + kvh * group + pr % group) * D + ld_col : q;
    cp_async16(Qs + row * S + ld_col, src, valid);
  }
  int32_t slots[kLoads];  // pool slots of this thread's K/V rows in the next tile to copy (-1: past the context)
  auto locate = [&](int tile) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int key = tile * BN + ld_row + i * kRowStep;
      slots[i] = key < n_end ? slot_in(table, uint32_t(key), bix) : -1;
    }
  };
  auto k_buf = [&](int tile) { return KVs + (tile % STAGES) * 2 * BN * S; };
  auto v_buf = [&](int tile) { return k_buf(tile) + BN * S; };
  auto load = [&](int tile) {
    T* kd = k_buf(tile);
    T* vd = v_buf(tile);
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const bool valid = slots[i] >= 0;
      const int64_t off = valid ? (slots[i] * Hkv + kvh) * D + ld_col : 0;
      cp_async16(kd + (ld_row + i * kRowStep) * S + ld_col, kc + off, valid);
      cp_async16(vd + (ld_row + i * kRowStep) * S + ld_col, vc + off, valid);
    }
  };

  float o[MT][D / 8][4];  // output accumulators: 8 dims per n-tile; [0,1] row g, [2,3] row g+8 of each m-tile
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
  float m_run[MT][2], l_run[MT][2];  // running maximum in raw score units; this thread's part of the row sum
  const int64_t wrow = m0 + warp * 16 * MT;
  const bool warp_active = wrow < rows;  // a warp whose rows are all padding skips the math
  const int64_t wlast = (wrow + 16 * MT < rows ? wrow + 16 * MT : rows) - 1;
  const int warp_first_pos = first_pos + int(wrow / group);   // keys 0..this are seen by every row of the warp
  const int warp_last_pos = first_pos + int(wlast / group);   // no row of the warp sees a key past this
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) {
      m_run[mt][h2] = kNegInf;
      l_run[mt][h2] = 0.0f;
    }
  const T* q_warp = Qs + (warp * 16 * MT + (lane & 15)) * S + (lane >> 4) * 8;  // + mt*16 rows, + ks*16 dims
  const int k_lane = ((lane & 7) + ((lane >> 4) << 3)) * S + ((lane >> 3) & 1) * 8;  // + p*16 keys, + ks*16 dims
  const int v_lane = ((lane & 7) + ((lane >> 3) & 1) * 8) * S + (lane >> 4) * 8;      // + kk*16 keys, + dp*16 dims

  // S = Q K_j^T, in raw units. A step is one 16-key pair of n-tiles at one 16-dim k-step: its
  // 4 mma's run while the next step's fragments load.
  auto qk = [&](const T* Kt, float (&s)[MT][BN / 8][4]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
    uint32_t qa[2][MT][4], kb[2][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(qa[0][mt], q_warp + mt * 16 * S);
    ldmatrix_x4(kb[0], Kt + k_lane);
#pragma unroll
    for (int step = 0; step < KS * NP; ++step) {
      const int ks = step / NP, p = step % NP;
      if (step + 1 < KS * NP) {
        if (p == 0 && ks + 1 < KS)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(qa[(ks + 1) & 1][mt], q_warp + mt * 16 * S + (ks + 1) * 16);
        const int ks1 = (step + 1) / NP, p1 = (step + 1) % NP;
        ldmatrix_x4(kb[(step + 1) & 1], Kt + k_lane + p1 * 16 * S + ks1 * 16);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_16816<T>(s[mt][2 * p], qa[ks & 1][mt], kb[step & 1][0], kb[step & 1][1]);
        mma_16816<T>(s[mt][2 * p + 1], qa[ks & 1][mt], kb[step & 1][2], kb[step & 1][3]);
      }
    }
  };

  // The online softmax of tile j, in registers; P as A fragments into pf.
  uint32_t pf[MT][KK][4];
  auto softmax = [&](float (&s)[MT][BN / 8][4], int j) {
    const int n0 = j * BN;
    if (n0 + BN - 1 > warp_first_pos) {  // the tile crosses some row's diagonal (or the context's end)
      const int wr = int(wrow - m0) + int(m0), grp = int(group);  // rows and positions fit 32 bits
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h2 = 0; h2 < 2; ++h2) {
          const int pos = first_pos + (wr + mt * 16 + g + 8 * h2) / grp, last = (pos < n_end ? pos : n_end - 1) - n0 - 2 * t4;
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (nt * 8 + e > last) s[mt][nt][2 * h2 + e] = kNegInf;
        }
    }
    float alpha[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h2 = 0; h2 < 2; ++h2) {
        float mx = kNegInf;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h2], s[mt][nt][2 * h2 + 1]));
        mx = quad_max(mx);
        const float m_new = fmaxf(m_run[mt][h2], mx);
        const float m_scaled = m_new == kNegInf ? 0.0f : m_new * scale_log2;  // a row with nothing visible yet stays at zero
        alpha[mt][h2] = exp2_fast(m_run[mt][h2] * scale_log2 - m_scaled);   // rescales what was summed under the old max
        m_run[mt][h2] = m_new;
        float psum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& v = s[mt][nt][2 * h2 + e];
            v = exp2_fast(fmaf(v, scale_log2, -m_scaled));
            psum += v;
          }
        l_run[mt][h2] = l_run[mt][h2] * alpha[mt][h2] + psum;
      }
    bool moved = false;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) moved |= alpha[mt][0] != 1.0f || alpha[mt][1] != 1.0f;
    if (warp_any(moved))
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          o[mt][i][0] *= alpha[mt][0];
          o[mt][i][1] *= alpha[mt][0];
          o[mt][i][2] *= alpha[mt][1];
          o[mt][i][3] *= alpha[mt][1];
        }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int kk = 0; kk < KK; ++kk) {
        pf[mt][kk][0] = pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pf[mt][kk][1] = pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pf[mt][kk][2] = pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pf[mt][kk][3] = pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
  };

  // O += P V_j; a step is one 16-dim pair of n-tiles at one 16-key k-step, its V fragment loaded a step ahead.
  auto pv = [&](const T* Vt) {
    uint32_t vb[2][4];
    ldmatrix_x4_trans(vb[0], Vt + v_lane);
#pragma unroll
    for (int step = 0; step < KK * DP; ++step) {
      const int kk = step / DP, dp = step % DP;
      if (step + 1 < KK * DP) {
        const int kk1 = (step + 1) / DP, dp1 = (step + 1) % DP;
        ldmatrix_x4_trans(vb[(step + 1) & 1], Vt + v_lane + kk1 * 16 * S + dp1 * 16);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_16816<T>(o[mt][2 * dp], pf[mt][kk], vb[step & 1][0], vb[step & 1][1]);
        mma_16816<T>(o[mt][2 * dp + 1], pf[mt][kk], vb[step & 1][2], vb[step & 1][3]);
      }
    }
  };

  // One commit group per tile (Q rides with tile 0): at the top of iteration j the only group
  // in flight is tile j's, so "tile j landed" is "no group pending". Tile j+1 goes into the
  // buffers of tile j-1, which the barrier says every warp is done with.
  locate(0);
  load(0);
  cp_async_commit();
  if (n_tiles > 1) locate(1);
  for (int j = 0; j < n_tiles; ++j) {
    cp_async_wait<0>();
    __syncthreads();  // tile j (and Q) landed for every thread; every warp is done with tile j-1's buffers
    if (j + 1 < n_tiles) load(j + 1);  // slots located during iteration j-1 (or before the loop)
    cp_async_commit();
    const bool work = warp_active && j * BN <= warp_last_pos;  // some row of the warp sees a key of tile j
    float s[MT][BN / 8][4];
    if (work) {
      qk(k_buf(j), s);
      softmax(s, j);
    }
    if (j + 2 < n_tiles) locate(j + 2);  // its global loads land while P V runs
    if (work) pv(v_buf(j));
  }

  cp_async_wait<0>();  // nothing is pending on a valid step; a step whose context is shorter than its queries may have a copy left
  if (!warp_active) return;
  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h2 = 0; h2 < 2; ++h2) {
      const int64_t pr = wrow + mt * 16 + g + 8 * h2;
      const float l = quad_sum(l_run[mt][h2]);
      if (pr >= rows) continue;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      uint32_t* dst = reinterpret_cast<uint32_t*>(out + ((q_start + pr / group) * Hq + kvh * group + pr % group) * D + 2 * t4);
#pragma unroll
      for (int i = 0; i < D / 8; ++i) stg(dst + i * 4, pack2<T>(o[mt][i][2 * h2] * inv, o[mt][i][2 * h2 + 1] * inv));
    }
}

}  // namespace
}  // namespace flash

namespace flash {
namespace {
void check_grid(const dim3& g) {
  if (g.y > 65535 || g.z > 65535)
    throw Error("flash_prefill: " + std::to_string(g.y) + " sequences x " + std::to_string(g.z) + " row tiles exceed a launch's grid (65535 each)");
}
}  // namespace
}  // namespace flash

void flash_prefill(flash::Stream st, const PagedAttentionArgs& a, int version) {
  using namespace flash;
  const std::string why = aios::flash::prefill_unsupported(a, version);
  if (!why.empty()) throw Error("flash_prefill: " + why);
  if (a.num_seqs == 0 || a.num_tokens == 0 || a.max_q_len == 0) return;
  const float scale_log2 = a.scale * kLog2e;
  if (version == 1) {
    dispatch_any(a.dt, [&](auto tag) {
      using T = decltype(tag);
      dispatch_dim(a.head_dim, [&](auto dim) {
        constexpr int D = decltype(dim)::value;
        const dim3 grid(unsigned(a.q_heads), unsigned(a.num_seqs), unsigned((a.max_q_len + kV1Rows - 1) / kV1Rows));
        check_grid(grid);
        launch(prefill_v1_kernel<T, D>, grid, dim3(kV1Threads), v1_smem<D>(), st, "flash_prefill v1", a, scale_log2, block_index(a));
      });
    });
  } else {
    dispatch_half(a.dt, [&](auto tag) {
      using T = decltype(tag);
      auto run = [&](auto cfg, auto dim) {
        constexpr int MT = decltype(cfg)::MT, BN = decltype(cfg)::BN, ST = decltype(cfg)::STAGES, D = decltype(dim)::value;
        const int64_t group = a.q_heads / a.kv_heads;
        const dim3 grid(unsigned(a.kv_heads), unsigned(a.num_seqs), unsigned((a.max_q_len * group + tc_rows<MT>() - 1) / tc_rows<MT>()));
        check_grid(grid);
        static const char* names[] = {"", "", "flash_prefill v2", "flash_prefill v3", "flash_prefill v4"};
        launch(prefill_tc_kernel<T, D, MT, BN, ST>, grid, dim3(kTcThreads), tc_smem<D, MT, BN, ST>(), st, names[version], a, scale_log2, block_index(a));
      };
      auto with_dim = [&](auto cfg) {
        if (a.head_dim == 64) run(cfg, std::integral_constant<int, 64>{});
        else run(cfg, std::integral_constant<int, 128>{});
      };
      if (version == 2) with_dim(TcConfig<2>{});
      else if (version == 3) with_dim(TcConfig<3>{});
      else if (version == 4) with_dim(TcConfig<4>{});
      else {
        auto run5 = [&](auto dim) {
          constexpr int D = decltype(dim)::value;
          const int64_t group = a.q_heads / a.kv_heads;
          const dim3 grid(unsigned(a.kv_heads), unsigned(a.num_seqs), unsigned((a.max_q_len * group + kV5Rows - 1) / kV5Rows));
          check_grid(grid);
          launch(prefill_v5_kernel<T, D>, grid, dim3(kV5Threads), v5_smem<D>(), st, "flash_prefill v5", a, scale_log2, block_index(a));
        };
        if (a.head_dim == 64) run5(std::integral_constant<int, 64>{});
        else run5(std::integral_constant<int, 128>{});
      }
    });
  }
}

}  // namespace aios::AIOS_FLASH_NS
