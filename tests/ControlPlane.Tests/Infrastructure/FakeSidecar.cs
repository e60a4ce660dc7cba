using System.Collections.Concurrent;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using HybridServing.Contracts.Sidecar;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.ControlPlane.Tests.Infrastructure;

/// <summary>
/// An in-test EngineSidecar gRPC service on a real Kestrel h2c endpoint: it keeps the desired set the
/// control plane sends, "loads" each adapter at once (or fails the ones told to), and streams state.
/// It records every EnsureAdapters call so tests can check batching and churn.
/// </summary>
internal sealed class FakeSidecar : EngineSidecar.EngineSidecarBase, IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, AdapterStatus> _adapters = new(StringComparer.Ordinal);
    private readonly List<Action> _subscribers = [];
    private WebApplication? _app;
    private CancellationTokenSource _stopping = new();

    public FakeSidecar(string podName, string node, string baseModel = TestAdapters.TinyModel, int maxLoras = 4, int maxCpuLoras = 4, int maxLoraRank = 16)
    {
        Info = new EngineInfo
        {
            EngineKind = "mock", MaxLoras = maxLoras, MaxCpuLoras = maxCpuLoras, MaxLoraRank = maxLoraRank,
            PodName = podName, NodeName = node, EngineUrl = $"http://engine.{podName}.test:8000",
        };
        Info.BaseModels.Add(baseModel);
    }

    public EngineInfo Info { get; }
    public string Name => Info.PodName;
    public Uri Url { get; private set; } = null!;

    /// <summary>Adapters this engine refuses to load (reported Failed with reason EngineRejected).</summary>
    public ConcurrentDictionary<string, string> FailAdapters { get; } = new(StringComparer.Ordinal);

    /// <summary>Adapters this sidecar refuses the way the real one does with a non-retryable reason (e.g.
    /// PathNotAllowed): PENDING in the EnsureAdapters answer, then FAILED with that reason on the state stream.</summary>
    public ConcurrentDictionary<string, (string Reason, string Message)> RefuseAdapters { get; } = new(StringComparer.Ordinal);

    private volatile bool _sleeping;

    /// <summary>The engine's sleep state as the real sidecar reports it from <c>vllm:engine_sleep_state</c> (setting it publishes a state).</summary>
    public bool Sleeping
    {
        get => _sleeping;
        set
        {
            _sleeping = value;
            Notify();
        }
    }

    /// <summary>Every desired set received, in order.</summary>
    public ConcurrentQueue<EnsureAdaptersRequest> EnsureCalls { get; } = new();

    public IReadOnlyList<string> Desired
    {
        get { lock (_gate) return [.. _adapters.Keys.Order(StringComparer.Ordinal)]; }
    }

    public IReadOnlyList<string> Loaded
    {
        get { lock (_gate) return [.. _adapters.Values.Where(a => a.Phase == AdapterPhase.Loaded).Select(a => a.Name).Order(StringComparer.Ordinal)]; }
    }

    private int _port;

    /// <summary>
    /// Starts (or restarts, on the same port). A restarted sidecar forgets its adapters unless
    /// <paramref name="keepAdapters"/> (a sidecar that was only unreachable for a while).
    /// </summary>
    public async Task StartAsync(bool keepAdapters = false)
    {
        if (_port == 0) _port = Ports.GetFree();
        var port = _port;
        if (!keepAdapters) lock (_gate) _adapters.Clear();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(this);
        _app = builder.Build();
        _app.MapGrpcService<FakeSidecar>();
        await _app.StartAsync();
        Url = new Uri($"http://127.0.0.1:{port}");
    }

    public async Task StopAsync()
    {
        if (_app is null) return;
        // End open streams first: Kestrel would otherwise wait for them until its shutdown timeout.
        await _stopping.CancelAsync();
        await _app.StopAsync();
        _stopping = new();
        await _app.DisposeAsync();
        _app = null;
    }

    public override Task<EngineInfo> GetInfo(GetInfoRequest request, ServerCallContext context) => Task.FromResult(Info);

    public override Task<EnsureAdaptersResponse> EnsureAdapters(EnsureAdaptersRequest request, ServerCallContext context)
    {
        EnsureCalls.Enqueue(request);
        var response = new EnsureAdaptersResponse { Generation = request.Generation };
        lock (_gate)
        {
            foreach (var gone in _adapters.Keys.Where(n => request.Adapters.All(a => a.Name != n)).ToList()) _adapters.Remove(gone);
            foreach (var spec in request.Adapters)
            {
                var failed = FailAdapters.TryGetValue(spec.Name, out var why);
                if (RefuseAdapters.ContainsKey(spec.Name) && _adapters.ContainsKey(spec.Name)) continue; // unchanged spec: stays refused
                _adapters[spec.Name] = new AdapterStatus
                {
                    Name = spec.Name, Source = spec.Source, Digest = spec.Sha256,
                    Phase = RefuseAdapters.ContainsKey(spec.Name) ? AdapterPhase.Pending : failed ? AdapterPhase.Failed : AdapterPhase.Loaded,
                    Reason = failed ? "EngineRejected" : "", Message = failed ? why : "",
                    Updated = Timestamp.FromDateTime(DateTime.UtcNow),
                };
            }
            response.Adapters.AddRange(_adapters.Values);
        }
        Notify();
        if (request.Adapters.Any(a => RefuseAdapters.ContainsKey(a.Name))) _ = RefuseLaterAsync();
        return Task.FromResult(response);
    }

    private async Task RefuseLaterAsync()
    {
        await Task.Delay(50);
        lock (_gate)
            foreach (var (name, (reason, message)) in RefuseAdapters)
                if (_adapters.TryGetValue(name, out var a) && a.Phase == AdapterPhase.Pending)
                    _adapters[name] = new AdapterStatus(a) { Phase = AdapterPhase.Failed, Reason = reason, Message = message, Updated = Timestamp.FromDateTime(DateTime.UtcNow) };
        Notify();
    }

    public override Task<ListAdaptersResponse> ListAdapters(ListAdaptersRequest request, ServerCallContext context)
    {
        var response = new ListAdaptersResponse();
        lock (_gate) response.Adapters.AddRange(_adapters.Values);
        return Task.FromResult(response);
    }

    public override async Task WatchState(WatchStateRequest request, IServerStreamWriter<EngineState> responseStream, ServerCallContext context)
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping.Token);
        var signal = new SemaphoreSlim(1);
        void Wake() => signal.Release();
        lock (_gate) _subscribers.Add(Wake);
        try
        {
            while (!ended.IsCancellationRequested)
            {
                await signal.WaitAsync(ended.Token);
                EngineState state;
                lock (_gate)
                {
                    state = new EngineState { Info = Info, Load = new EngineLoad { Healthy = true, Sleeping = _sleeping } };
                    state.Adapters.AddRange(_adapters.Values);
                }
                await responseStream.WriteAsync(state, ended.Token);
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            lock (_gate) _subscribers.Remove(Wake);
        }
    }

    /// <summary>Another control plane replica (the leader) had this adapter loaded here.</summary>
    public void SimulateLoaded(string name)
    {
        lock (_gate)
            _adapters[name] = new AdapterStatus { Name = name, Phase = AdapterPhase.Loaded, Updated = Timestamp.FromDateTime(DateTime.UtcNow) };
        Notify();
    }

    private void Notify()
    {
        Action[] subs;
        lock (_gate) subs = [.. _subscribers];
        foreach (var s in subs) s();
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
