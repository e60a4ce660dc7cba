using System.Threading.Channels;
using Grpc.Core;
using HybridServing.Contracts.ControlPlane;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HybridServing.Gateway.Tests.Hosts;

/// <summary>
/// An in-test AdapterRouter gRPC server on 127.0.0.1 (h2c): the test decides the routing table and
/// how RequestLoad answers, which is exactly what gateway tests need to control.
/// </summary>
internal sealed class FakeControlPlane : AdapterRouter.AdapterRouterBase, IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly List<Channel<RoutingTable>> _watchers = [];
    private RoutingTable? _table;
    private int _requestLoads;

    private FakeControlPlane(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Answers RequestLoad; default accepts.</summary>
    public Func<RequestLoadRequest, Task<RequestLoadResponse>> OnRequestLoad { get; set; } =
        _ => Task.FromResult(new RequestLoadResponse { Accepted = true, Reason = "Scheduled" });

    public int RequestLoads => Volatile.Read(ref _requestLoads);

    /// <summary>Every ReportDemand received, in order (including ones <see cref="FailDemandReports"/> refused).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<DemandReport> DemandReports { get; } = new();

    /// <summary>Answer ReportDemand with Unavailable (the gateway must drop the report and keep serving).</summary>
    public bool FailDemandReports { get; set; }

    public int Watchers { get { lock (_gate) return _watchers.Count; } }

    public static async Task<FakeControlPlane> StartAsync(RoutingTable? initial = null)
    {
        var port = Ports.GetFree();
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenLocalhost(port, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        FakeControlPlane? self = null;
        builder.Services.AddSingleton(_ => self!);
        var app = builder.Build();
        self = new FakeControlPlane(app) { Url = new Uri($"http://127.0.0.1:{port}"), _table = initial };
        app.MapGrpcService<FakeControlPlane>();
        await app.StartAsync();
        return self;
    }

    /// <summary>Sends a new whole table to every watcher (and to later ones).</summary>
    public void Publish(RoutingTable table)
    {
        lock (_gate)
        {
            _table = table;
            foreach (var w in _watchers) w.Writer.TryWrite(table);
        }
    }

    /// <summary>Ends every open WatchRoutes stream (the gateway must reconnect).</summary>
    public void DropWatchers()
    {
        lock (_gate)
        {
            foreach (var w in _watchers) w.Writer.TryComplete();
            _watchers.Clear();
        }
    }

    public override async Task WatchRoutes(WatchRoutesRequest request, IServerStreamWriter<RoutingTable> responseStream, ServerCallContext context)
    {
        var channel = Channel.CreateUnbounded<RoutingTable>();
        lock (_gate)
        {
            if (_table is not null) channel.Writer.TryWrite(_table);
            _watchers.Add(channel);
        }
        try
        {
            await foreach (var table in channel.Reader.ReadAllAsync(context.CancellationToken))
                await responseStream.WriteAsync(table);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            lock (_gate) _watchers.Remove(channel);
        }
    }

    public override Task<RequestLoadResponse> RequestLoad(RequestLoadRequest request, ServerCallContext context)
    {
        Interlocked.Increment(ref _requestLoads);
        return OnRequestLoad(request);
    }

    public override Task<DemandReportAck> ReportDemand(DemandReport request, ServerCallContext context)
    {
        DemandReports.Enqueue(request);
        return FailDemandReports
            ? throw new RpcException(new Status(StatusCode.Unavailable, "demand reports refused by the test"))
            : Task.FromResult(new DemandReportAck());
    }

    public async ValueTask DisposeAsync()
    {
        DropWatchers();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
