using Google.Protobuf;
using HybridServing.Contracts.ControlPlane;

namespace HybridServing.ControlPlane.Routing;

/// <summary>
/// The routing table gateways subscribe to. Only the reconciler writes it; a new version is
/// published only when the content changed, and waiters are woken once per version.
/// </summary>
internal sealed class RoutingTableStore
{
    private readonly Lock _gate = new();
    private RoutingTable _current = new() { Version = 0 };
    private ByteString _content = ByteString.Empty;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public RoutingTable Current { get { lock (_gate) return _current; } }

    /// <summary>Publishes <paramref name="table"/> (its version is assigned here); returns true when it differed.</summary>
    public bool Publish(RoutingTable table)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            var candidate = table.Clone();
            candidate.Version = 0;
            var content = candidate.ToByteString();
            if (content.Equals(_content) && _current.Version > 0) return false;
            candidate.Version = _current.Version + 1;
            _content = content;
            _current = candidate;
            signal = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
        return true;
    }

    /// <summary>Completes when a version newer than <paramref name="seenVersion"/> exists.</summary>
    public Task WaitForNewerAsync(long seenVersion, CancellationToken cancellationToken)
    {
        lock (_gate)
            return _current.Version > seenVersion ? Task.CompletedTask : _changed.Task.WaitAsync(cancellationToken);
    }
}
