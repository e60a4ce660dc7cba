using System.Diagnostics;

namespace HybridServing.Contracts.Telemetry;

/// <summary>
/// Carries trace context across an asynchronous hand-off: a request records the context it runs in
/// (<see cref="Add"/>), and the background pass that later does its work starts its span as a child of
/// the first such request and linked to the others (<see cref="StartActivity"/>). A gateway's cold start
/// is then one trace: RequestLoad → the ControlPlane's reconcile → EnsureAdapters → the sidecar's load.
/// </summary>
public sealed class TraceHandoff
{
    private readonly Lock _gate = new();
    private List<ActivityContext> _pending = [];

    /// <summary>Records the current span's context, if it is being recorded.</summary>
    public void Add()
    {
        if (Activity.Current is not { Recorded: true } current) return;
        lock (_gate) _pending.Add(current.Context);
    }

    /// <summary>Starts <paramref name="name"/>, continuing the first recorded context and linking the rest; clears them.</summary>
    public Activity? StartActivity(ActivitySource source, string name)
    {
        List<ActivityContext> pending;
        lock (_gate) (pending, _pending) = (_pending, []);
        if (pending.Count == 0) return source.StartActivity(name);
        return source.StartActivity(name, ActivityKind.Internal, pending[0], links: pending.Skip(1).Select(c => new ActivityLink(c)));
    }
}
