namespace HybridServing.MockEngine.Performance;

/// <summary>The engine's limits, in vLLM's terms.</summary>
public sealed record EngineModelOptions
{
    public int MaxNumSeqs { get; init; } = 256;
    public int MaxNumBatchedTokens { get; init; } = 8192;
    public bool EnableLora { get; init; } = true;
    public int MaxLoras { get; init; } = 1;
    public int MaxCpuLoras { get; init; } = 1;
    /// <summary>KV-cache blocks; null sizes it from the profile as vLLM does.</summary>
    public int? KvBlocks { get; init; }
    public int BlockSize { get; init; } = 16;
    public double GpuMemoryUtilization { get; init; } = 0.9;
    /// <summary>Reproduce the vLLM defect where unload does not free the GPU slot.</summary>
    public bool UnloadKeepsSlot { get; init; }
    /// <summary>Relative spread of step times (0 = exact roofline); seeded, so runs repeat.</summary>
    public double StepJitter { get; init; }
    public int Seed { get; init; }
    /// <summary>Upper bound of the per-request token-count histograms.</summary>
    public int MaxModelLen { get; init; } = 131072;

    public static EngineModelOptions From(MockEngineOptions o) => new()
    {
        MaxNumSeqs = o.MaxNumSeqs,
        MaxNumBatchedTokens = o.EffectiveMaxNumBatchedTokens,
        EnableLora = o.EnableLora,
        MaxLoras = o.MaxLoras,
        MaxCpuLoras = o.EffectiveMaxCpuLoras,
        KvBlocks = o.KvBlocks,
        BlockSize = o.BlockSize,
        GpuMemoryUtilization = o.GpuMemoryUtilization,
        UnloadKeepsSlot = o.UnloadKeepsSlot,
        StepJitter = o.StepJitter,
        Seed = o.Seed,
        MaxModelLen = o.EffectiveMaxModelLen,
    };
}

/// <summary>
/// vLLM V1's scheduler and LoRA worker as a pure state machine over model time: no clock, no
/// threads, no HTTP. A driver calls <see cref="BeginStep"/>, lets <see cref="StepPlan.Duration"/>
/// pass on its clock (real, scaled or virtual), then calls <see cref="CompleteStep"/>. The HTTP
/// server (<see cref="RealTimeEngineDriver"/>) and the cluster simulator
/// (<see cref="VirtualEngineDriver"/>) run this same code. Not thread-safe: drivers serialise.
/// </summary>
public sealed class EngineModel
{
    private const int MaxLoraInfoSeries = 10_000;

    private readonly LinkedList<ModelRequest> _waiting = new();
    private readonly List<ModelRequest> _running = [];
    private readonly AdapterResidency _residency;
    private readonly Dictionary<(string Running, string Waiting), DateTimeOffset> _loraInfo = [];
    private DateTimeOffset _lastLoraInfo;
    // Runtime loads run inside vLLM V1's engine loop: no step can start before they are done.
    private DateTimeOffset _loopBusyUntil;
    private readonly Random _jitter;
    private StepPlan? _inFlight;
    private int _freeBlocks;

    public EngineModel(EngineModelOptions options, PerformanceProfile profile, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxNumSeqs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxNumBatchedTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxLoras, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxCpuLoras, options.MaxLoras);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BlockSize, 1);
        Options = options;
        Profile = profile;
        TotalBlocks = options.KvBlocks ?? profile.KvBlocks(options.BlockSize, options.GpuMemoryUtilization);
        ArgumentOutOfRangeException.ThrowIfLessThan(TotalBlocks, 1);
        _freeBlocks = TotalBlocks;
        _residency = new AdapterResidency(options.MaxLoras, options.MaxCpuLoras, profile);
        Statistics = new EngineStatistics(options.MaxModelLen);
        _jitter = new Random(options.Seed);
        if (options.EnableLora) RecordLoraInfo(now);
    }

    public EngineModelOptions Options { get; }
    public PerformanceProfile Profile { get; }
    public EngineStatistics Statistics { get; }
    public int TotalBlocks { get; }
    public int UsedBlocks => TotalBlocks - _freeBlocks;
    /// <summary><c>vllm:kv_cache_usage_perc</c>: 0..1.</summary>
    public double KvCacheUsage => (double)UsedBlocks / TotalBlocks;
    public int RunningCount => _running.Count;
    public int WaitingCount => _waiting.Count;
    public bool HasWork => _running.Count > 0 || _waiting.Count > 0;
    public bool StepInFlight => _inFlight is not null;
    /// <summary>The step planned and not yet completed, if any.</summary>
    public StepPlan? CurrentStep => _inFlight;
    public IEnumerable<ModelRequest> Waiting => _waiting;
    public IReadOnlyList<ModelRequest> Running => _running;

    /// <summary>Adapters with running requests, in order of first appearance (vLLM's running_lora_adapters).</summary>
    public IReadOnlyList<string> RunningAdapters => Distinct(_running);
    /// <summary>Adapters with waiting requests (vLLM's waiting_lora_adapters).</summary>
    public IReadOnlyList<string> WaitingAdapters => Distinct(_waiting);
    /// <summary>GPU-resident adapters, least recently used first.</summary>
    public IReadOnlyList<string> GpuAdapters => _residency.GpuLruOrder.ToArray();
    /// <summary>Host-memory adapters, least recently used first.</summary>
    public IReadOnlyList<string> HostAdapters => _residency.CpuLruOrder.ToArray();
    public IReadOnlyCollection<string> RegisteredAdapters => _residency.Registered;
    public int GhostSlots => _residency.GhostSlots;
    public AdapterSpec? Adapter(string name) => _residency.Spec(name);

    /// <summary>
    /// Every <c>vllm:lora_requests_info</c> label combination seen, with the model time it was last
    /// current. vLLM never removes old combinations; readers take the newest.
    /// </summary>
    public IReadOnlyDictionary<(string Running, string Waiting), DateTimeOffset> LoraInfoSeries => _loraInfo;

    public int BlocksFor(int tokens) => (tokens + Options.BlockSize - 1) / Options.BlockSize;

    /// <summary>Whether a request of this size could ever run here (its whole sequence fits the KV cache).</summary>
    public bool CanEverFit(int promptTokens, int outputTokens) => BlocksFor(promptTokens + outputTokens) <= TotalBlocks;

    /// <summary>
    /// Registers an adapter (the runtime load API or <c>--lora-modules</c>) and reads it into host
    /// memory. In vLLM V1 that load runs inside the engine loop (after the step in flight), so a
    /// step that would start before it is done waits for it.
    /// </summary>
    public AdapterLoadRecord RegisterAdapter(AdapterSpec spec, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var load = _residency.Register(spec, now);
        var start = Max(Max(now, _loopBusyUntil), _inFlight?.End ?? now);
        _loopBusyUntil = start + TimeSpan.FromSeconds(load.Seconds);
        Statistics.RecordLoad(load);
        return load;
    }

    /// <summary>Forgets an adapter; requests already queued for it still finish.</summary>
    public bool UnregisterAdapter(string name)
    {
        var inUse = _running.Any(r => r.Adapter == name) || _waiting.Any(r => r.Adapter == name);
        return _residency.Unregister(name, Options.UnloadKeepsSlot, inUse);
    }

    public void Submit(ModelRequest request, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Submitted)
            throw new InvalidOperationException($"Request '{request.Id}' was already submitted.");
        if (request.Adapter is not null && !_residency.IsRegistered(request.Adapter))
            throw new InvalidOperationException($"Adapter '{request.Adapter}' is not registered.");
        if (!CanEverFit(request.PromptTokens, request.OutputTokens))
            throw new InvalidOperationException(
                $"Request '{request.Id}' needs {BlocksFor(request.PromptTokens + request.OutputTokens)} KV blocks; the cache has {TotalBlocks}.");
        request.ArrivalTime = now;
        request.Submitted = true;
        _waiting.AddLast(request);
        if (Options.EnableLora && request.Adapter is not null) RecordLoraInfo(now);
    }

    /// <summary>Client went away: drop the request and free its blocks.</summary>
    public bool Abort(ModelRequest request, DateTimeOffset now)
    {
        if (request.State is RequestState.Finished or RequestState.Aborted) return false;
        if (request.State == RequestState.Running) _running.Remove(request); else _waiting.Remove(request);
        FreeBlocks(request);
        request.State = RequestState.Aborted;
        request.FinishTime = now;
        ReleaseRetired(request.Adapter);
        if (Options.EnableLora) RecordLoraInfo(now);
        return true;
    }

    /// <summary>
    /// Plans one step at <paramref name="now"/>: vLLM V1's schedule() (running requests first,
    /// preempting the lowest-priority one when KV blocks run out; then waiting requests if nothing
    /// was preempted, bounded by max_num_seqs, the token budget, KV blocks and max_loras), then the
    /// adapter loads the batch needs, then the step's cost. Null when nothing can run.
    /// </summary>
    public StepPlan? BeginStep(DateTimeOffset now)
    {
        if (_inFlight is not null) throw new InvalidOperationException("A step is already in flight; complete it first.");
        var scheduled = new List<(ModelRequest Request, int Tokens)>();
        var budget = Options.MaxNumBatchedTokens;
        var preempted = false;

        for (var i = 0; i < _running.Count && budget > 0;)
        {
            var request = _running[i];
            var tokens = Math.Min(request.TotalTokens - request.ComputedTokens, budget);
            var needed = BlocksFor(request.ComputedTokens + tokens) - request.AllocatedBlocks;
            var selfPreempted = false;
            while (needed > _freeBlocks)
            {
                // vLLM V1 preempts the last request of the running list (lowest FCFS priority).
                var victim = _running[^1];
                Preempt(victim);
                preempted = true;
                if (ReferenceEquals(victim, request)) { selfPreempted = true; break; }
            }
            if (selfPreempted) break;
            Allocate(request, needed);
            scheduled.Add((request, tokens));
            budget -= tokens;
            i++;
        }

        var active = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (request, _) in scheduled)
            if (request.Adapter is not null) active.Add(request.Adapter);

        // vLLM admits no new request in a step that had to preempt.
        if (!preempted)
        {
            var node = _waiting.First;
            while (node is not null && _running.Count < Options.MaxNumSeqs && budget > 0)
            {
                var request = node.Value;
                var next = node.Next;
                // A real-time driver can plan a step that began before the newest arrivals (see
                // RealTimeEngineDriver): they join the next one. The queue is in arrival order.
                if (request.ArrivalTime > now) break;
                if (request.Adapter is not null && !_residency.CanAdmit(request.Adapter, active))
                {
                    // Its adapter cannot join this batch: skip it, it keeps its place at the front.
                    node = next;
                    continue;
                }
                var tokens = Math.Min(request.TotalTokens - request.ComputedTokens, budget);
                var needed = BlocksFor(request.ComputedTokens + tokens) - request.AllocatedBlocks;
                if (needed > _freeBlocks) break;
                _waiting.Remove(node);
                _running.Add(request);
                request.State = RequestState.Running;
                request.FirstScheduledTime ??= now;
                Allocate(request, needed);
                scheduled.Add((request, tokens));
                budget -= tokens;
                if (request.Adapter is not null) active.Add(request.Adapter);
                node = next;
            }
        }

        if (scheduled.Count == 0)
        {
            if (preempted && Options.EnableLora) RecordLoraInfo(now);
            return null;
        }

        // Adapters the batch needs but the GPU does not hold are loaded before the forward pass:
        // the whole batch waits for them (vLLM's set_active_adapters runs inside execute_model).
        var loads = new List<AdapterLoadRecord>();
        // A runtime load still in progress holds the step back; one that finished while idle costs nothing.
        var loadSeconds = Math.Max(0, (_loopBusyUntil - now).TotalSeconds);
        foreach (var adapter in active)
        {
            var load = _residency.EnsureOnGpu(adapter, active, now);
            if (load is null) continue;
            loads.Add(load);
            loadSeconds += load.Seconds;
            Statistics.RecordLoad(load);
        }

        var compute = ComputeSeconds(scheduled, active);
        if (Options.StepJitter > 0)
            compute *= Math.Max(0.1, 1 + Options.StepJitter * (2 * _jitter.NextDouble() - 1));
        var plan = new StepPlan(now, scheduled, loads, loadSeconds, compute);
        _inFlight = plan;
        // vLLM publishes the scheduler's view (running/waiting adapters) once per step.
        if (Options.EnableLora) RecordLoraInfo(now);
        return plan;
    }

    /// <summary>Applies a planned step at its end time: tokens come out, finished requests leave.</summary>
    public void CompleteStep(StepPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (!ReferenceEquals(plan, _inFlight)) throw new InvalidOperationException("This step is not the one in flight.");
        _inFlight = null;
        Statistics.Steps++;
        var end = plan.End;
        foreach (var (request, tokens) in plan.Scheduled)
        {
            // Aborted (or preempted) while the step ran: its work is lost.
            if (request.State != RequestState.Running) continue;
            request.ComputedTokens += tokens;
            if (request.ComputedTokens < request.TotalTokens) continue; // a prefill chunk, not the last one

            request.GeneratedTokens++;
            Statistics.GenerationTokens++;
            if (request.FirstTokenTime is null)
            {
                request.FirstTokenTime = end;
                Statistics.PromptTokens += request.PromptTokens;
                Statistics.TimeToFirstToken.Observe((end - request.ArrivalTime).TotalSeconds);
            }
            else if (request.LastTokenTime is { } last)
            {
                Statistics.InterTokenLatency.Observe((end - last).TotalSeconds);
            }
            request.LastTokenTime = end;
            request.TokenEmitted?.Invoke(request, end);

            if (request.GeneratedTokens >= request.OutputTokens || request.EndRequested) Finish(request, end);
        }
        if (Options.EnableLora) RecordLoraInfo(end);
    }

    private void Finish(ModelRequest request, DateTimeOffset end)
    {
        _running.Remove(request);
        FreeBlocks(request);
        request.State = RequestState.Finished;
        request.FinishTime = end;
        Statistics.EndToEndLatency.Observe((end - request.ArrivalTime).TotalSeconds);
        var scheduled = request.FirstScheduledTime ?? end;
        var firstToken = request.FirstTokenTime ?? end;
        Statistics.QueueTime.Observe((scheduled - request.ArrivalTime).TotalSeconds);
        Statistics.PrefillTime.Observe((firstToken - scheduled).TotalSeconds);
        Statistics.DecodeTime.Observe((end - firstToken).TotalSeconds);
        Statistics.InferenceTime.Observe((end - scheduled).TotalSeconds);
        Statistics.PromptTokensPerRequest.Observe(request.PromptTokens);
        Statistics.GenerationTokensPerRequest.Observe(request.GeneratedTokens);
        Statistics.SuccessByReason[request.FinishReason] = Statistics.SuccessByReason.GetValueOrDefault(request.FinishReason) + 1;
        ReleaseRetired(request.Adapter);
        request.Finished?.Invoke(request);
    }

    /// <summary>
    /// Step cost: a roofline over the base model (weights plus KV read vs. dense FLOPs), plus the
    /// LoRA kernels, which grow with the number of distinct adapters and with tokens × rank.
    /// </summary>
    private double ComputeSeconds(List<(ModelRequest Request, int Tokens)> scheduled, HashSet<string> adapters)
    {
        var p = Profile;
        long tokens = 0, context = 0;
        double loraTokenRank = 0;
        foreach (var (request, n) in scheduled)
        {
            tokens += n;
            context += request.ComputedTokens + n;
            if (request.Adapter is not null) loraTokenRank += (double)n * (_residency.Spec(request.Adapter)?.Rank ?? 0);
        }
        var memory = (p.WeightBytes + (double)context * p.KvBytesPerToken) / p.MemoryBytesPerSecond;
        var compute = tokens * p.FlopsPerToken / p.FlopsPerSecond;
        var seconds = p.StepOverheadSeconds + Math.Max(memory, compute);
        if (adapters.Count > 0)
        {
            seconds += p.LoraBatchOverheadSeconds + adapters.Count * p.LoraPerAdapterSeconds + loraTokenRank * p.LoraPerTokenRankSeconds;
            foreach (var a in adapters) seconds += (_residency.Spec(a)?.SizeBytes ?? 0) / p.MemoryBytesPerSecond;
        }
        return seconds;
    }

    private void Preempt(ModelRequest request)
    {
        _running.Remove(request);
        FreeBlocks(request);
        // Recompute mode: the KV is gone; prompt and generated tokens are prefilled again.
        request.ComputedTokens = 0;
        request.State = RequestState.Waiting;
        request.Preemptions++;
        Statistics.Preemptions++;
        _waiting.AddFirst(request);
    }

    private void Allocate(ModelRequest request, int blocks)
    {
        if (blocks <= 0) return;
        _freeBlocks -= blocks;
        request.AllocatedBlocks += blocks;
    }

    private void FreeBlocks(ModelRequest request)
    {
        _freeBlocks += request.AllocatedBlocks;
        request.AllocatedBlocks = 0;
    }

    private void ReleaseRetired(string? adapter)
    {
        if (adapter is null || _residency.IsRegistered(adapter)) return;
        if (_running.Any(r => r.Adapter == adapter) || _waiting.Any(r => r.Adapter == adapter)) return;
        _residency.ForgetRetired(adapter);
    }

    private void RecordLoraInfo(DateTimeOffset now)
    {
        var key = (string.Join(',', RunningAdapters), string.Join(',', WaitingAdapters));
        if (!_loraInfo.ContainsKey(key) && _loraInfo.Count >= MaxLoraInfoSeries)
        {
            // Bound memory on very long runs: the oldest combination is the one no reader wants.
            var oldest = _loraInfo.MinBy(kv => kv.Value).Key;
            _loraInfo.Remove(oldest);
        }
        // Strictly increasing values, so "the newest series" is never a tie within one step.
        if (now <= _lastLoraInfo) now = _lastLoraInfo + TimeSpan.FromMicroseconds(1);
        _lastLoraInfo = now;
        _loraInfo[key] = now;
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static string[] Distinct(IEnumerable<ModelRequest> requests)
    {
        var seen = new List<string>();
        foreach (var r in requests)
            if (r.Adapter is not null && !seen.Contains(r.Adapter)) seen.Add(r.Adapter);
        return [.. seen];
    }
}
