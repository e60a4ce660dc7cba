namespace HybridServing.MockEngine.Performance;

/// <summary>Where an adapter's weights come from when they are not in host memory.</summary>
public enum AdapterSource
{
    LocalDisk,
    Remote,
}

/// <summary>Which tier an adapter had to be brought from before a step could run it.</summary>
public enum LoadTier
{
    /// <summary>Host memory → GPU slot.</summary>
    HostToGpu,
    /// <summary>Local disk → host memory (→ GPU).</summary>
    LocalDisk,
    /// <summary>Object store → host memory (→ GPU).</summary>
    Remote,
}

/// <summary>An adapter the engine knows: enough to cost its loads and its kernels.</summary>
public sealed record AdapterSpec(string Name, int Rank, long SizeBytes, AdapterSource Source = AdapterSource.LocalDisk, bool Pinned = false);

/// <summary>One adapter load the model charged, for metrics and benchmarks.</summary>
public sealed record AdapterLoadRecord(string Adapter, LoadTier Tier, double Seconds, DateTimeOffset At);

public enum RequestState
{
    Waiting,
    Running,
    Finished,
    Aborted,
}

/// <summary>
/// A request as the performance model sees it: token counts and an adapter, no text. The creator
/// decides how many tokens it will generate; the model decides when each one comes out.
/// Callbacks run on the thread that drives the model, under its lock: keep them short.
/// </summary>
public sealed class ModelRequest
{
    public ModelRequest(string id, string? adapter, int promptTokens, int outputTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputTokens, 1);
        Id = id;
        Adapter = adapter;
        PromptTokens = promptTokens;
        OutputTokens = outputTokens;
    }

    public string Id { get; }
    /// <summary>Adapter name, or null for the base model.</summary>
    public string? Adapter { get; }
    public int PromptTokens { get; }
    public int OutputTokens { get; }
    /// <summary><c>finished_reason</c> label for <c>vllm:request_success_total</c>.</summary>
    public string FinishReason { get; set; } = "length";
    /// <summary>Set by a step executor: the token of this step is the last one (end of turn or a stop string).</summary>
    public bool EndRequested { get; set; }
    /// <summary>What a step executor keeps for this request (the ONNX backend's sequence); the model never reads it.</summary>
    public object? ExecutorState { get; init; }

    public RequestState State { get; internal set; } = RequestState.Waiting;
    public DateTimeOffset ArrivalTime { get; internal set; }
    public DateTimeOffset? FirstScheduledTime { get; internal set; }
    public DateTimeOffset? FirstTokenTime { get; internal set; }
    public DateTimeOffset? LastTokenTime { get; internal set; }
    public DateTimeOffset? FinishTime { get; internal set; }
    public int GeneratedTokens { get; internal set; }
    public int Preemptions { get; internal set; }

    /// <summary>Tokens whose KV is computed (reset to 0 by a preemption: vLLM V1 recomputes).</summary>
    internal int ComputedTokens { get; set; }
    internal int AllocatedBlocks { get; set; }
    internal int TotalTokens => PromptTokens + GeneratedTokens;
    internal bool Submitted { get; set; }

    /// <summary>Called once per generated token, with the model time it came out.</summary>
    public Action<ModelRequest, DateTimeOffset>? TokenEmitted { get; set; }
    /// <summary>Called once when the last token is out (not on abort).</summary>
    public Action<ModelRequest>? Finished { get; set; }

    public TimeSpan? TimeToFirstToken => FirstTokenTime - ArrivalTime;
    public TimeSpan? EndToEndLatency => FinishTime - ArrivalTime;
    public TimeSpan? QueueTime => FirstScheduledTime - ArrivalTime;
    /// <summary>Mean time per output token after the first (what a TPOT objective measures).</summary>
    public TimeSpan? TimePerOutputToken => GeneratedTokens > 1 && LastTokenTime is { } last && FirstTokenTime is { } first
        ? (last - first) / (GeneratedTokens - 1) : null;
}

/// <summary>
/// Computes the tokens of a planned step for real (the ONNX backend). The driver calls it between
/// <see cref="EngineModel.BeginStep"/> and <see cref="EngineModel.CompleteStep"/>, and the step then
/// lasts what the computation took instead of the profile's modelled time.
/// </summary>
public interface IStepExecutor
{
    void Execute(StepPlan plan);
}

/// <summary>What one step ran and what it cost. The driver waits <see cref="Duration"/> then completes it.</summary>
public sealed class StepPlan
{
    internal StepPlan(DateTimeOffset start, IReadOnlyList<(ModelRequest Request, int Tokens)> scheduled,
        IReadOnlyList<AdapterLoadRecord> loads, double loadSeconds, double computeSeconds)
    {
        Start = start;
        Scheduled = scheduled;
        Loads = loads;
        LoadSeconds = loadSeconds;
        ComputeSeconds = computeSeconds;
    }

    public DateTimeOffset Start { get; }
    public IReadOnlyList<(ModelRequest Request, int Tokens)> Scheduled { get; }
    /// <summary>Adapter loads this step waited for: they stall the whole batch, as in vLLM.</summary>
    public IReadOnlyList<AdapterLoadRecord> Loads { get; }
    public double LoadSeconds { get; private set; }
    public double ComputeSeconds { get; private set; }
    public TimeSpan Duration => TimeSpan.FromSeconds(LoadSeconds + ComputeSeconds);
    public DateTimeOffset End => Start + Duration;

    /// <summary>A step an <see cref="IStepExecutor"/> computed lasts what it measured (model time); nothing is modelled.</summary>
    internal void UseMeasured(TimeSpan modelTime)
    {
        LoadSeconds = 0;
        ComputeSeconds = modelTime.TotalSeconds;
    }
}
