using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Tests.Performance;

public sealed class EngineModelTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static VirtualEngineDriver Driver(int maxLoras = 1, int maxCpuLoras = 4, int maxNumSeqs = 256, int? kvBlocks = null,
        PerformanceProfile? profile = null, bool unloadKeepsSlot = false, int batchedTokens = 8192) =>
        new(new EngineModelOptions
        {
            MaxLoras = maxLoras, MaxCpuLoras = maxCpuLoras, MaxNumSeqs = maxNumSeqs, KvBlocks = kvBlocks,
            MaxNumBatchedTokens = batchedTokens, UnloadKeepsSlot = unloadKeepsSlot,
        }, profile ?? PerformanceProfile.H100Llama3_8B, T0);

    private static ModelRequest Request(string id, string? adapter, int prompt = 100, int output = 20) => new(id, adapter, prompt, output);

    private static void Step(VirtualEngineDriver d) => d.AdvanceTo(d.NextEventTime ?? throw new InvalidOperationException("idle"));

    [Fact]
    public void A_step_planned_before_a_request_arrived_leaves_it_for_the_next_step()
    {
        // A real-time driver chains steps in model time and can plan one that began before the newest arrival.
        var model = new EngineModel(new EngineModelOptions(), PerformanceProfile.H100Llama3_8B, T0);
        var early = Request("early", null);
        var late = Request("late", null);
        model.Submit(early, T0);
        model.Submit(late, T0.AddMilliseconds(20));

        var step = model.BeginStep(T0.AddMilliseconds(10))!;
        Assert.Equal([early], step.Scheduled.Select(s => s.Request));
        model.CompleteStep(step);

        var next = model.BeginStep(T0.AddMilliseconds(20))!;
        Assert.Contains(late, next.Scheduled.Select(s => s.Request));
        Assert.Equal(T0.AddMilliseconds(20), late.FirstScheduledTime);
    }

    [Fact]
    public void Slot_contention_shows_as_waiting_requests_and_waiting_lora_adapters()
    {
        var d = Driver(maxLoras: 1);
        d.RegisterAdapter(new AdapterSpec("a", 8, 10_000_000));
        d.RegisterAdapter(new AdapterSpec("b", 8, 10_000_000));
        var a = Request("a1", "a", output: 50);
        var b = Request("b1", "b", output: 5);
        d.Submit(a);
        d.Submit(b);
        Step(d);

        Assert.Equal(RequestState.Running, a.State);
        Assert.Equal(RequestState.Waiting, b.State);
        Assert.Equal(1, d.Model.RunningCount);
        Assert.Equal(1, d.Model.WaitingCount);
        Assert.Equal(["a"], d.Model.RunningAdapters);
        Assert.Equal(["b"], d.Model.WaitingAdapters);
        var newest = d.Model.LoraInfoSeries.MaxBy(kv => kv.Value).Key;
        Assert.Equal(("a", "b"), newest);

        Assert.True(d.RunUntilIdle(TimeSpan.FromMinutes(1)));
        Assert.True(b.FirstScheduledTime >= a.FinishTime, "b must wait for a's slot");
        // Old label combinations stay, with older timestamps; the newest says nothing is busy.
        Assert.True(d.Model.LoraInfoSeries.Count >= 3);
        Assert.Equal(("", ""), d.Model.LoraInfoSeries.MaxBy(kv => kv.Value).Key);
    }

    [Fact]
    public void A_request_whose_adapter_cannot_join_is_skipped_and_kept_at_the_front()
    {
        var d = Driver(maxLoras: 1);
        d.RegisterAdapter(new AdapterSpec("a", 8, 1_000_000));
        d.RegisterAdapter(new AdapterSpec("b", 8, 1_000_000));
        var a1 = Request("a1", "a", output: 30);
        var b1 = Request("b1", "b", output: 3);
        var a2 = Request("a2", "a", output: 3);
        var baseRequest = Request("base", null, output: 3);
        d.Submit(a1);
        Step(d);
        d.Submit(b1);
        d.Submit(a2);
        d.Submit(baseRequest);
        Step(d);

        // a2 and the base request overtake b1, which keeps its place at the head of the queue.
        Assert.Equal(RequestState.Running, a2.State);
        Assert.Equal(RequestState.Running, baseRequest.State);
        Assert.Equal(RequestState.Waiting, b1.State);
        Assert.Same(b1, d.Model.Waiting.First());
        Assert.True(d.RunUntilIdle(TimeSpan.FromMinutes(1)));
        Assert.True(b1.FirstScheduledTime >= a1.FinishTime);
    }

    [Fact]
    public void Max_num_seqs_bounds_the_batch()
    {
        var d = Driver(maxNumSeqs: 2);
        var requests = Enumerable.Range(0, 5).Select(i => Request($"r{i}", null)).ToArray();
        foreach (var r in requests) d.Submit(r);
        Step(d);
        Assert.Equal(2, d.Model.RunningCount);
        Assert.Equal(3, d.Model.WaitingCount);
        Assert.True(d.RunUntilIdle(TimeSpan.FromMinutes(1)));
        Assert.All(requests, r => Assert.Equal(RequestState.Finished, r.State));
        Assert.Equal(5, d.Model.Statistics.SuccessByReason["length"]);
    }

    [Fact]
    public void Host_memory_is_an_lru_of_max_cpu_loras()
    {
        var d = Driver(maxLoras: 1, maxCpuLoras: 2);
        foreach (var name in new[] { "a", "b", "c" }) d.RegisterAdapter(new AdapterSpec(name, 8, 1_000_000));
        Assert.Equal(["b", "c"], d.Model.HostAdapters);
        Assert.Equal(["a", "b", "c"], d.Model.RegisteredAdapters.Order());

        // Using b makes it most recent; loading a back from disk then evicts c, not b.
        d.Submit(Request("rb", "b", output: 1));
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.Equal(["c", "b"], d.Model.HostAdapters);
        var ra = Request("ra", "a", output: 1);
        d.Submit(ra);
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.Equal(["b", "a"], d.Model.HostAdapters);
        Assert.Equal(["a"], d.Model.GpuAdapters);
        Assert.Equal(1, d.Model.Statistics.AdapterLoadsByTier[LoadTier.HostToGpu]);
        Assert.Equal(3 + 1, d.Model.Statistics.AdapterLoadsByTier[LoadTier.LocalDisk]);
    }

    [Theory]
    [InlineData(LoadTier.HostToGpu, 0.002 + 0.1e9 / 16e9)]
    [InlineData(LoadTier.LocalDisk, 0.020 + 0.1e9 / 2e9 + 0.002 + 0.1e9 / 16e9)]
    [InlineData(LoadTier.Remote, 0.500 + 0.1e9 / 200e6 + 0.002 + 0.1e9 / 16e9)]
    public void Load_cost_by_tier_stalls_the_whole_step(LoadTier tier, double expectedSeconds)
    {
        const long size = 100_000_000;
        var d = Driver(maxLoras: 1, maxCpuLoras: 1);
        var source = tier == LoadTier.Remote ? AdapterSource.Remote : AdapterSource.LocalDisk;
        d.RegisterAdapter(new AdapterSpec("x", 16, size, source));
        if (tier != LoadTier.HostToGpu) d.RegisterAdapter(new AdapterSpec("evictor", 16, size)); // pushes x out of host memory
        // Let the registrations' own stall pass with a throwaway base request.
        d.Submit(Request("warm", null, output: 1));
        d.RunUntilIdle(TimeSpan.FromMinutes(1));

        var busy = Request("busy", null, prompt: 10, output: 200);
        d.Submit(busy);
        Step(d);
        var tokensBefore = busy.GeneratedTokens;
        StepPlan? plan = null;
        d.StepCompleted += p => plan ??= p.Loads.Count > 0 ? p : null;
        d.Submit(Request("needs-x", "x", output: 1));
        d.RunUntilIdle(TimeSpan.FromMinutes(1));

        Assert.NotNull(plan);
        var load = Assert.Single(plan!.Loads);
        Assert.Equal(tier, load.Tier);
        Assert.Equal(expectedSeconds, load.Seconds, 6);
        Assert.True(plan.Duration.TotalSeconds >= expectedSeconds, "the load is on the critical path");
        // The base request in the same batch waited too: its inter-token gap contains the load.
        Assert.True(d.Model.Statistics.InterTokenLatency.Sum > expectedSeconds);
        Assert.True(busy.GeneratedTokens > tokensBefore);
    }

    [Fact]
    public void A_full_kv_cache_preempts_the_newest_request_and_everything_still_finishes()
    {
        // 10 blocks × 16 tokens = 160 tokens; two 60+60 requests need 240.
        var d = Driver(kvBlocks: 10);
        var first = Request("first", null, prompt: 60, output: 60);
        var second = Request("second", null, prompt: 60, output: 60);
        d.Submit(first);
        d.Submit(second);
        Assert.True(d.RunUntilIdle(TimeSpan.FromMinutes(5)));
        Assert.True(d.Model.Statistics.Preemptions > 0);
        Assert.Equal(0, first.Preemptions);
        Assert.True(second.Preemptions > 0);
        Assert.Equal(RequestState.Finished, second.State);
        Assert.Equal(60, second.GeneratedTokens);
        Assert.Equal(0, d.Model.UsedBlocks);
    }

    [Fact]
    public void Kv_usage_reflects_allocated_blocks()
    {
        var d = Driver(kvBlocks: 100);
        d.Submit(Request("r", null, prompt: 160, output: 50));
        Step(d);
        Assert.Equal(0.10, d.Model.KvCacheUsage, 6); // the 160-token prefill holds 10 blocks of 16
        Step(d);
        Assert.Equal(0.11, d.Model.KvCacheUsage, 6); // the first decode step needs an 11th
    }

    [Fact]
    public void Step_cost_grows_with_distinct_adapters_and_rank()
    {
        double Duration(params (string? Adapter, int Rank)[] requests)
        {
            var d = Driver(maxLoras: 4);
            foreach (var (adapter, rank) in requests.Where(r => r.Adapter is not null).DistinctBy(r => r.Adapter))
                d.RegisterAdapter(new AdapterSpec(adapter!, rank, 1_000));
            d.Submit(Request("warm", null, output: 1));
            d.RunUntilIdle(TimeSpan.FromMinutes(1));
            foreach (var (adapter, _) in requests) d.Submit(Request(Guid.NewGuid().ToString(), adapter, prompt: 500, output: 1));
            StepPlan? plan = null;
            d.StepCompleted += p => plan ??= p;
            d.RunUntilIdle(TimeSpan.FromMinutes(1));
            return plan!.ComputeSeconds;
        }

        var none = Duration((null, 0), (null, 0));
        var one = Duration(("a", 8), ("a", 8));
        var two = Duration(("a", 8), ("b", 8));
        var twoHighRank = Duration(("a", 64), ("b", 64));
        Assert.True(none < one && one < two && two < twoHighRank, $"{none} {one} {two} {twoHighRank}");
    }

    [Fact]
    public void Default_profile_matches_public_8b_h100_figures()
    {
        var d = Driver();
        var r = Request("r", null, prompt: 1000, output: 11);
        d.Submit(r);
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        var ttft = r.TimeToFirstToken!.Value.TotalMilliseconds;
        var tpot = (r.FinishTime!.Value - r.FirstTokenTime!.Value).TotalMilliseconds / 10;
        Assert.InRange(ttft, 25, 60);  // 1k-token prefill
        Assert.InRange(tpot, 5, 10);   // batch-1 decode
        Assert.Equal(tpot, r.TimePerOutputToken!.Value.TotalMilliseconds, 3); // TimeSpan ticks are 100 ns
        Assert.Throws<InvalidOperationException>(() => d.Submit(r)); // a request is submitted once
        Assert.InRange(PerformanceProfile.H100Llama3_8B.KvBlocks(16, 0.9), 20_000, 30_000);
    }

    [Fact]
    public void Same_workload_same_timings()
    {
        static DateTimeOffset?[] Run()
        {
            var d = Driver(maxLoras: 2, maxNumSeqs: 8);
            foreach (var n in new[] { "a", "b", "c" }) d.RegisterAdapter(new AdapterSpec(n, 16, 50_000_000));
            var random = new Random(7);
            var requests = new List<ModelRequest>();
            for (var i = 0; i < 40; i++)
            {
                d.AdvanceTo(d.Now + TimeSpan.FromMilliseconds(random.Next(0, 30)));
                var r = Request($"r{i}", random.Next(4) switch { 0 => null, 1 => "a", 2 => "b", _ => "c" }, random.Next(10, 500), random.Next(1, 40));
                requests.Add(r);
                d.Submit(r);
            }
            d.RunUntilIdle(TimeSpan.FromMinutes(10));
            return requests.Select(r => r.FinishTime).ToArray();
        }

        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void Unload_frees_the_slot_unless_the_defect_is_on()
    {
        foreach (var keepsSlot in new[] { false, true })
        {
            var d = Driver(maxLoras: 1, unloadKeepsSlot: keepsSlot);
            d.RegisterAdapter(new AdapterSpec("a", 8, 1_000));
            d.RegisterAdapter(new AdapterSpec("b", 8, 1_000));
            d.Submit(Request("ra", "a", output: 1));
            d.RunUntilIdle(TimeSpan.FromMinutes(1));
            Assert.True(d.Model.UnregisterAdapter("a"));
            var rb = Request("rb", "b", output: 1);
            d.Submit(rb);
            d.RunUntilIdle(TimeSpan.FromMinutes(1));
            Assert.Equal(keepsSlot ? RequestState.Waiting : RequestState.Finished, rb.State);
            Assert.Equal(keepsSlot ? 1 : 0, d.Model.GhostSlots);
        }
    }

    [Fact]
    public void Aborting_frees_blocks_and_the_request_never_finishes()
    {
        var d = Driver(kvBlocks: 100);
        var r = Request("r", null, prompt: 100, output: 100);
        var finished = false;
        r.Finished = _ => finished = true;
        d.Submit(r);
        Step(d);
        Assert.True(d.Model.UsedBlocks > 0);
        Assert.True(d.Abort(r));
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.Equal(0, d.Model.UsedBlocks);
        Assert.False(finished);
        Assert.Equal(RequestState.Aborted, r.State);
    }

    [Fact]
    public void Requests_larger_than_the_cache_are_refused_at_submit()
    {
        var d = Driver(kvBlocks: 4);
        Assert.Throws<InvalidOperationException>(() => d.Submit(Request("big", null, prompt: 60, output: 10)));
        Assert.Throws<InvalidOperationException>(() => d.Submit(Request("unknown-adapter", "nope")));
    }

    [Fact]
    public void Chunked_prefill_respects_the_token_budget()
    {
        var d = Driver(batchedTokens: 512, maxNumSeqs: 4);
        var r = Request("long", null, prompt: 2000, output: 1);
        d.Submit(r);
        var steps = 0;
        d.StepCompleted += p => { steps++; Assert.True(p.Scheduled.Sum(s => s.Tokens) <= 512); };
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        Assert.Equal(4, steps); // 2000 prompt tokens in chunks of 512
    }

    [Fact]
    public void Step_jitter_is_deterministic_per_seed()
    {
        static double[] Run(int seed, double jitter)
        {
            var d = new VirtualEngineDriver(new EngineModelOptions { Seed = seed, StepJitter = jitter }, PerformanceProfile.H100Llama3_8B, T0);
            var durations = new List<double>();
            d.StepCompleted += p => durations.Add(p.Duration.TotalSeconds);
            d.Submit(new ModelRequest("r", null, 100, 30));
            d.RunUntilIdle(TimeSpan.FromMinutes(1));
            return [.. durations];
        }

        Assert.Equal(Run(1, 0.1), Run(1, 0.1));
        Assert.NotEqual(Run(1, 0.1), Run(2, 0.1));
        var exact = Run(1, 0);
        var jittered = Run(1, 0.1);
        Assert.All(exact.Zip(jittered), pair => Assert.InRange(pair.Second, pair.First * 0.89, pair.First * 1.11));
    }

    [Fact]
    public void Finished_requests_fill_vllms_phase_histograms()
    {
        var d = Driver();
        d.Submit(Request("r", null, prompt: 300, output: 12));
        d.RunUntilIdle(TimeSpan.FromMinutes(1));
        var s = d.Model.Statistics;
        Assert.Equal(1, s.PrefillTime.Count);
        Assert.Equal(1, s.DecodeTime.Count);
        Assert.Equal(s.InferenceTime.Sum, s.PrefillTime.Sum + s.DecodeTime.Sum, 9);
        Assert.Equal(300, s.PromptTokensPerRequest.Sum);
        Assert.Equal(12, s.GenerationTokensPerRequest.Sum);
        Assert.Equal([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000], EngineStatistics.TokenCountBuckets(2048));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unloading_an_adapter_in_use_lets_its_requests_finish(bool keepsSlot)
    {
        var d = Driver(maxLoras: 1, unloadKeepsSlot: keepsSlot);
        d.RegisterAdapter(new AdapterSpec("a", 8, 1_000));
        var running = Request("running", "a", output: 20);
        var queued = Request("queued", "a", output: 5);
        d.Submit(running);
        Step(d);
        d.Submit(queued);
        Assert.True(d.UnregisterAdapter("a"));
        Assert.DoesNotContain("a", d.Model.RegisteredAdapters);
        Assert.True(d.RunUntilIdle(TimeSpan.FromMinutes(1)));
        Assert.Equal(RequestState.Finished, running.State);
        Assert.Equal(RequestState.Finished, queued.State);
        Assert.Empty(d.Model.GpuAdapters);
        Assert.Equal(keepsSlot ? 1 : 0, d.Model.GhostSlots);
    }
}
