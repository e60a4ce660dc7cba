using System.Text.Json;
using System.Text.Json.Nodes;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using HybridServing.ControlPlane.Homes;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>
/// Leader election on a coordination.k8s.io Lease with KubernetesClient's <see cref="LeaderElector"/>.
/// It keeps trying for as long as the process runs (after a lost lease, it competes again), and on a
/// clean shutdown it hands the lease back (empty holder) so that a follower takes over at once
/// instead of waiting a whole lease duration.
/// </summary>
internal sealed partial class LeaseLeadership : IControlPlaneLeadership, IAsyncDisposable
{
    private readonly KubeApi _api;
    private readonly KubernetesHomeOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private volatile bool _isLeader;
    private volatile string? _leader;

    public LeaseLeadership(KubeApi api, KubernetesHomeOptions options, string ns, string identity, ILogger logger)
    {
        _api = api;
        _options = options;
        _logger = logger;
        Namespace = ns;
        Identity = identity;
    }

    public string Namespace { get; }
    public string Identity { get; }
    public bool IsLeader => _isLeader;
    public string? Leader => _leader;
    public event Action? LeadershipChanged;

    public void Start() => _loop ??= Task.Run(() => RunAsync(_stop.Token));

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            using var elector = new LeaderElector(new LeaderElectionConfig(new LeaseLock(_api.Client, Namespace, _options.LeaseName, Identity))
            {
                LeaseDuration = _options.LeaseDuration,
                RenewDeadline = _options.RenewDeadline,
                RetryPeriod = _options.RetryPeriod,
            });
            elector.OnStartedLeading += () => SetLeader(true);
            elector.OnStoppedLeading += () => SetLeader(false);
            elector.OnNewLeader += leader =>
            {
                _leader = leader;
                LogNewLeader(_logger, string.IsNullOrEmpty(leader) ? "(none)" : leader, Identity);
            };
            try
            {
                await elector.RunAndTryToHoldLeadershipForeverAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The elector gives up on transport errors (API server unreachable); compete again after a pause.
                SetLeader(false);
                LogElectionFailed(_logger, e.Message);
                try { await Task.Delay(_options.RetryPeriod, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    private void SetLeader(bool value)
    {
        if (_isLeader == value) return;
        _isLeader = value;
        if (value) _leader = Identity;
        if (value) LogStartedLeading(_logger, Identity, Namespace, _options.LeaseName);
        else LogStoppedLeading(_logger, Identity);
        LeadershipChanged?.Invoke();
    }

    /// <summary>Gives the lease back if this replica holds it (a follower may then take it at once).</summary>
    private async Task ReleaseAsync()
    {
        try
        {
            var path = $"apis/coordination.k8s.io/v1/namespaces/{Namespace}/leases/{_options.LeaseName}";
            using var lease = await _api.GetAsync(path, CancellationToken.None);
            var spec = lease.RootElement.GetProperty("spec");
            if (!spec.TryGetProperty("holderIdentity", out var holder) || holder.GetString() != Identity) return;
            var rv = lease.RootElement.GetProperty("metadata").GetProperty("resourceVersion").GetString();
            // An empty holder (not null: the elector would try to create the lease) with a 1 s duration, as client-go releases.
            using var _ = await _api.MergePatchAsync(path, new JsonObject
            {
                ["metadata"] = new JsonObject { ["resourceVersion"] = rv },
                ["spec"] = new JsonObject { ["holderIdentity"] = "", ["leaseDurationSeconds"] = 1 },
            }, CancellationToken.None);
            LogReleased(_logger, Identity);
        }
        catch (Exception e) when (e is KubeApiException or HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            LogReleaseFailed(_logger, e.Message);
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        // The container may dispose a singleton once per registration that resolves it.
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        // Read before stopping: the elector reports "stopped leading" as it winds down.
        var wasLeader = _isLeader;
        await _stop.CancelAsync();
        if (_loop is not null) await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        SetLeader(false);
        if (wasLeader) await ReleaseAsync();
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 720, Level = LogLevel.Information, Message = "{Identity} is now the leader (Lease {Namespace}/{Lease})")]
    private static partial void LogStartedLeading(ILogger logger, string identity, string @namespace, string lease);

    [LoggerMessage(EventId = 721, Level = LogLevel.Warning, Message = "{Identity} is no longer the leader")]
    private static partial void LogStoppedLeading(ILogger logger, string identity);

    [LoggerMessage(EventId = 722, Level = LogLevel.Information, Message = "Leader is {Leader} (this replica: {Identity})")]
    private static partial void LogNewLeader(ILogger logger, string leader, string identity);

    [LoggerMessage(EventId = 723, Level = LogLevel.Warning, Message = "Leader election failed, competing again: {Message}")]
    private static partial void LogElectionFailed(ILogger logger, string message);

    [LoggerMessage(EventId = 724, Level = LogLevel.Information, Message = "{Identity} released the lease")]
    private static partial void LogReleased(ILogger logger, string identity);

    [LoggerMessage(EventId = 725, Level = LogLevel.Warning, Message = "Releasing the lease failed (a follower takes over when it expires): {Message}")]
    private static partial void LogReleaseFailed(ILogger logger, string message);
}
