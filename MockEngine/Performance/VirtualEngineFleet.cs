namespace HybridServing.MockEngine.Performance;

/// <summary>
/// Several engines on one virtual clock, for the cluster simulator: it advances the fleet to each
/// arrival, reads the engines' state to route, and submits. Engines do not interact, so advancing
/// each to the same instant is exact; <see cref="NextEventTime"/> serves simulators that react to
/// completions (closed-loop clients, autoscalers) between arrivals.
/// </summary>
public sealed class VirtualEngineFleet
{
    private readonly List<VirtualEngineDriver> _engines = [];

    public VirtualEngineFleet(DateTimeOffset start) => Now = start;

    public DateTimeOffset Now { get; private set; }

    public IReadOnlyList<VirtualEngineDriver> Engines => _engines;

    /// <summary>Adds an engine that starts now (a new pod, or a restarted one: it comes up empty).</summary>
    public VirtualEngineDriver Add(EngineModelOptions options, PerformanceProfile profile)
    {
        var engine = new VirtualEngineDriver(options, profile, Now);
        _engines.Add(engine);
        return engine;
    }

    /// <summary>Removes an engine (lost mid-run); its queued and running requests are aborted.</summary>
    public IReadOnlyList<ModelRequest> Remove(VirtualEngineDriver engine)
    {
        if (!_engines.Remove(engine)) return [];
        var lost = engine.Model.Running.Concat(engine.Model.Waiting).ToArray();
        foreach (var request in lost) engine.Abort(request);
        return lost;
    }

    /// <summary>The earliest instant any engine changes state on its own; null when all are idle.</summary>
    public DateTimeOffset? NextEventTime => _engines.Select(e => e.NextEventTime).Where(t => t is not null).Min();

    public void AdvanceTo(DateTimeOffset time)
    {
        if (time < Now) throw new ArgumentOutOfRangeException(nameof(time), $"Virtual time cannot go back from {Now:O} to {time:O}.");
        foreach (var engine in _engines) engine.AdvanceTo(time);
        Now = time;
    }

    /// <summary>Runs every engine until all are idle or <paramref name="limit"/> has passed; returns whether all went idle.</summary>
    public bool RunUntilIdle(TimeSpan limit)
    {
        var deadline = Now + limit;
        while (NextEventTime is { } next && next <= deadline) AdvanceTo(next);
        return _engines.All(e => e.NextEventTime is null && !e.Model.HasWork);
    }
}
