namespace HybridServing.MockEngine.Performance;

/// <summary>
/// Runs an <see cref="EngineModel"/> in virtual time, with no HTTP and no waiting: for the
/// cluster simulator and for tests. A simulator holding many engines merges their
/// <see cref="NextEventTime"/>s with its own arrivals and calls <see cref="AdvanceTo"/> on each.
/// </summary>
public sealed class VirtualEngineDriver
{
    private StepPlan? _inFlight;
    // Work is queued but no step can run (e.g. every slot ghosted): wait for something to change.
    private bool _stuck;

    public VirtualEngineDriver(EngineModel model, DateTimeOffset start)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Now = start;
    }

    public VirtualEngineDriver(EngineModelOptions options, PerformanceProfile profile, DateTimeOffset start)
        : this(new EngineModel(options, profile, start), start)
    {
    }

    public EngineModel Model { get; }
    public DateTimeOffset Now { get; private set; }

    /// <summary>Raised after every completed step (for tracing and benchmarks).</summary>
    public event Action<StepPlan>? StepCompleted;

    /// <summary>
    /// When the engine next changes state on its own: the end of its step, or now when work is
    /// queued and no step is running; null when it is idle or stuck.
    /// </summary>
    public DateTimeOffset? NextEventTime => _inFlight?.End ?? (Model.HasWork && !_stuck ? Now : null);

    /// <summary>
    /// A request arrives now. It joins the next step (requests arriving at the same instant share
    /// one), or waits for the step in flight to end, as in vLLM.
    /// </summary>
    public void Submit(ModelRequest request)
    {
        Model.Submit(request, Now);
        _stuck = false;
    }

    /// <summary>Registers an adapter now (runtime load); returns the load record.</summary>
    public AdapterLoadRecord RegisterAdapter(AdapterSpec spec)
    {
        _stuck = false;
        return Model.RegisterAdapter(spec, Now);
    }

    public bool UnregisterAdapter(string name)
    {
        _stuck = false;
        return Model.UnregisterAdapter(name);
    }

    public bool Abort(ModelRequest request)
    {
        _stuck = false;
        return Model.Abort(request, Now);
    }

    /// <summary>Runs every step that ends at or before <paramref name="time"/>, then moves the clock there.</summary>
    public void AdvanceTo(DateTimeOffset time)
    {
        if (time < Now) throw new ArgumentOutOfRangeException(nameof(time), $"Virtual time cannot go back from {Now:O} to {time:O}.");
        StartStepIfIdle();
        while (_inFlight is { } plan && plan.End <= time)
        {
            Now = plan.End;
            _inFlight = null;
            Model.CompleteStep(plan);
            StepCompleted?.Invoke(plan);
            StartStepIfIdle();
        }
        Now = time;
        // Work that arrived while idle starts at the new time.
        StartStepIfIdle();
    }

    /// <summary>Runs until nothing is left to do or <paramref name="limit"/> of virtual time has passed; returns whether it went idle.</summary>
    public bool RunUntilIdle(TimeSpan limit)
    {
        var deadline = Now + limit;
        StartStepIfIdle();
        while (_inFlight is { } plan && plan.End <= deadline) AdvanceTo(plan.End);
        return _inFlight is null && !Model.HasWork;
    }

    private void StartStepIfIdle()
    {
        if (_inFlight is not null || !Model.HasWork || _stuck) return;
        _inFlight = Model.BeginStep(Now);
        _stuck = _inFlight is null;
    }
}
