namespace HybridServing.Gateway.Routing;

/// <summary>
/// The gateway's one copy of the routing table. The subscriber is the only writer; readers take
/// <see cref="Current"/> (an immutable snapshot) and may wait for the next change.
/// </summary>
internal sealed class RoutingDatastore
{
    private volatile RoutingSnapshot _current = RoutingSnapshot.Empty;
    private volatile bool _synced;
    private TaskCompletionSource _changed = NewSignal();
    private readonly Lock _gate = new();

    public RoutingSnapshot Current => _current;

    /// <summary>True once the first table arrived; decisions before that would 404 everything.</summary>
    public bool Synced => _synced;

    public void Publish(RoutingSnapshot snapshot)
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            _current = snapshot;
            _synced = true;
            previous = _changed;
            _changed = NewSignal();
        }
        previous.TrySetResult();
    }

    /// <summary>
    /// Completes when the current snapshot is no longer <paramref name="seen"/> (at once if it
    /// already changed, so a publish between reading and waiting is never missed).
    /// </summary>
    public Task WaitForChangeAsync(RoutingSnapshot seen, CancellationToken cancellationToken)
    {
        Task signal;
        lock (_gate)
        {
            if (!ReferenceEquals(_current, seen)) return Task.CompletedTask;
            signal = _changed.Task;
        }
        return signal.WaitAsync(cancellationToken);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
