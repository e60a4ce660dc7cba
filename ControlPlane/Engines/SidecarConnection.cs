using Grpc.Core;
using Grpc.Net.Client;
using HybridServing.Contracts.Net;
using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Telemetry;

namespace HybridServing.ControlPlane.Engines;

/// <summary>What the control plane knows about one engine, from its sidecar's state stream.</summary>
internal sealed record EngineView(
    EngineEndpoint Endpoint,
    EngineInfo? Info,
    IReadOnlyDictionary<string, AdapterStatus> Adapters,
    EngineLoad? Load,
    bool Connected,
    DateTimeOffset? DisconnectedSince,
    string? LastError,
    IReadOnlyList<string>? SentAdapters,
    long SentGeneration,
    DateTimeOffset? NextEnsureAttempt)
{
    /// <summary>The sidecar's last load report says the engine is in vLLM's sleep mode: placement leaves it out until it wakes.</summary>
    public bool Sleeping => Load is { Sleeping: true };

    public string Node => Endpoint.Node is { Length: > 0 } n ? n : Info?.NodeName is { Length: > 0 } r ? r : Endpoint.Name;

    /// <summary>
    /// The engine URL others can reach. A sidecar reports its engine as it calls it; a loopback (or
    /// unspecified) host there is the sidecar's own network namespace. When the sidecar itself is reached
    /// at another address (a pod IP, in the Kubernetes home), the engine is on that same address: the
    /// reported port on the sidecar's host. In the local home both are loopback and nothing changes.
    /// </summary>
    public string? EngineUrl
    {
        get
        {
            if (Info is null || !Uri.TryCreate(Info.EngineUrl, UriKind.Absolute, out var reported)) return Info?.EngineUrl;
            if (!LocalAddress.IsLocalOnly(reported) || LocalAddress.IsLocalOnly(Endpoint.SidecarUrl)) return Info.EngineUrl;
            return new UriBuilder(reported) { Host = Endpoint.SidecarUrl.Host }.Uri.ToString();
        }
    }
}

/// <summary>
/// One engine's sidecar: a long-lived WatchState subscription (reconnecting with bounded exponential
/// backoff) that tells us the engine's facts, its adapters' phases and its load; and EnsureAdapters
/// calls carrying the complete desired set. After every (re)connect the desired set is sent again,
/// because a restarted sidecar has forgotten it.
/// </summary>
internal sealed partial class SidecarConnection : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly EngineSidecar.EngineSidecarClient _client;
    private readonly ControlPlaneOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private Task? _watch;

    private EngineInfo? _info;
    private Dictionary<string, AdapterStatus> _adapters = new(StringComparer.Ordinal);
    private EngineLoad? _load;
    private bool _connected;
    private DateTimeOffset? _disconnectedSince;
    private string? _lastError;
    private IReadOnlyList<AdapterSpec>? _sent;
    private string? _sentKey;
    private long _generation;
    private int _ensureFailures;
    private DateTimeOffset? _nextEnsure;

    public SidecarConnection(EngineEndpoint endpoint, ControlPlaneOptions options, TimeProvider time, ILogger logger, long initialGeneration)
    {
        Endpoint = endpoint;
        _options = options;
        _time = time;
        _logger = logger;
        _generation = initialGeneration;
        _disconnectedSince = time.GetUtcNow();
        _channel = GrpcChannel.ForAddress(endpoint.SidecarUrl, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                KeepAlivePingDelay = TimeSpan.FromSeconds(20),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                ConnectTimeout = TimeSpan.FromSeconds(5),
            },
        });
        _client = new EngineSidecar.EngineSidecarClient(_channel);
    }

    public EngineEndpoint Endpoint { get; }

    /// <summary>Raised after anything in <see cref="View"/> changed.</summary>
    public event Action? Changed;

    /// <summary>Raised (before <see cref="Changed"/>) for each adapter that became LOADED on this engine.</summary>
    public event Action<string, string>? AdapterLoaded;

    public void Start() => _watch ??= Task.Run(() => WatchLoopAsync(_stop.Token));

    public EngineView View
    {
        get
        {
            lock (_gate)
                return new EngineView(Endpoint, _info, _adapters, _load, _connected, _disconnectedSince, _lastError,
                    _sent?.Select(a => a.Name).ToArray(), _generation, _nextEnsure);
        }
    }

    /// <summary>
    /// Sends the complete desired set when it differs from what the sidecar last accepted (or the
    /// stream reconnected since). Returns false when the call failed (retried later with backoff).
    /// </summary>
    public async Task<bool> EnsureAsync(IReadOnlyList<AdapterSpec> desired, CancellationToken cancellationToken)
    {
        var key = string.Join("\n", desired.Select(a => $"{a.Name}|{a.Source}|{a.Sha256}|{a.BaseModel}|{a.Pinned}"));
        long generation;
        lock (_gate)
        {
            if (!_connected) return false;
            if (key == _sentKey) return true;
            if (_nextEnsure is { } due && due > _time.GetUtcNow()) return false;
            generation = ++_generation;
        }
        List<string>? loaded;
        var request = new EnsureAdaptersRequest { Generation = generation };
        request.Adapters.AddRange(desired);
        try
        {
            var response = await _client.EnsureAdaptersAsync(request, deadline: _time.GetUtcNow().UtcDateTime + _options.SidecarCallTimeout, cancellationToken: cancellationToken);
            lock (_gate)
            {
                _sent = desired;
                _sentKey = key;
                _ensureFailures = 0;
                _nextEnsure = null;
                _lastError = null;
                // The response already carries each adapter's state; merge it so status is fresh at once.
                loaded = NewlyLoaded(_adapters, response.Adapters);
                foreach (var a in response.Adapters) _adapters[a.Name] = a;
                foreach (var gone in _adapters.Keys.Where(n => desired.All(d => d.Name != n)).ToList())
                    if (_adapters[gone].Phase is not AdapterPhase.Unloading) _adapters.Remove(gone);
            }
            LogEnsured(_logger, Endpoint.Name, desired.Count, generation);
            ControlPlaneTelemetry.EnsureCalls.Add(1, new KeyValuePair<string, object?>("result", "ok"));
            RaiseLoaded(loaded);
            Changed?.Invoke();
            return true;
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            lock (_gate)
            {
                _ensureFailures++;
                var delay = Backoff.Delay(_options.BackoffInitial, _options.BackoffMax, _ensureFailures);
                _nextEnsure = _time.GetUtcNow() + delay;
                _lastError = $"EnsureAdapters failed ({e.StatusCode}): {e.Status.Detail}";
            }
            LogEnsureFailed(_logger, Endpoint.Name, e.StatusCode, e.Status.Detail);
            ControlPlaneTelemetry.EnsureCalls.Add(1, new KeyValuePair<string, object?>("result", "error"));
            Changed?.Invoke();
            return false;
        }
    }

    /// <summary>Adapters LOADED in <paramref name="next"/> that were not LOADED in <paramref name="current"/>; null when none.</summary>
    private static List<string>? NewlyLoaded(Dictionary<string, AdapterStatus> current, IEnumerable<AdapterStatus> next)
    {
        List<string>? loaded = null;
        foreach (var a in next)
            if (a.Phase == AdapterPhase.Loaded && !(current.TryGetValue(a.Name, out var was) && was.Phase == AdapterPhase.Loaded))
                (loaded ??= []).Add(a.Name);
        return loaded;
    }

    private void RaiseLoaded(List<string>? loaded)
    {
        if (loaded is null) return;
        foreach (var name in loaded) AdapterLoaded?.Invoke(Endpoint.Name, name);
    }

    private async Task WatchLoopAsync(CancellationToken ct)
    {
        var attempt = 0;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                using var call = _client.WatchState(new WatchStateRequest(), cancellationToken: ct);
                var first = true;
                await foreach (var state in call.ResponseStream.ReadAllAsync(ct))
                {
                    attempt = 0;
                    List<string>? loaded;
                    lock (_gate)
                    {
                        if (first)
                        {
                            // A (re)connected stream: the sidecar may have restarted, so send the desired set again.
                            _sentKey = null;
                            _connected = true;
                            _disconnectedSince = null;
                            _lastError = null;
                            _nextEnsure = null;
                            _ensureFailures = 0;
                        }
                        if (state.Info is not null) _info = state.Info;
                        loaded = NewlyLoaded(_adapters, state.Adapters);
                        _adapters = state.Adapters.ToDictionary(a => a.Name, StringComparer.Ordinal);
                        if (state.Load is not null) _load = state.Load;
                    }
                    if (first) LogConnected(_logger, Endpoint.Name, Endpoint.SidecarUrl);
                    first = false;
                    RaiseLoaded(loaded);
                    Changed?.Invoke();
                }
                MarkDisconnected("the state stream ended");
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                MarkDisconnected(e is RpcException r ? $"{r.StatusCode}: {r.Status.Detail}" : e.Message);
            }
            attempt++;
            var delay = Backoff.Delay(_options.ReconnectInitial, _options.ReconnectMax, attempt);
            try { await Task.Delay(delay, _time, ct); }
            catch (OperationCanceledException) { return; }
        }
    }

    private void MarkDisconnected(string why)
    {
        bool was;
        lock (_gate)
        {
            was = _connected;
            _connected = false;
            _disconnectedSince ??= _time.GetUtcNow();
            _lastError = $"sidecar unreachable: {why}";
        }
        if (was) LogDisconnected(_logger, Endpoint.Name, why);
        Changed?.Invoke();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_watch is not null) await _watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _channel.Dispose();
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Engine {Engine}: connected to sidecar {Url}")]
    private static partial void LogConnected(ILogger logger, string engine, Uri url);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Engine {Engine}: sidecar disconnected ({Reason})")]
    private static partial void LogDisconnected(ILogger logger, string engine, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Engine {Engine}: desired set of {Count} adapter(s) accepted (generation {Generation})")]
    private static partial void LogEnsured(ILogger logger, string engine, int count, long generation);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Engine {Engine}: EnsureAdapters failed ({Status}): {Detail}")]
    private static partial void LogEnsureFailed(ILogger logger, string engine, StatusCode status, string detail);
}

/// <summary>Bounded exponential backoff: initial × 2^(attempt-1), capped.</summary>
internal static class Backoff
{
    public static TimeSpan Delay(TimeSpan initial, TimeSpan max, int attempt)
    {
        if (attempt <= 1) return initial <= max ? initial : max;
        var factor = Math.Pow(2, Math.Min(attempt - 1, 30));
        var ticks = initial.Ticks * factor;
        return ticks >= max.Ticks ? max : TimeSpan.FromTicks((long)ticks);
    }
}
