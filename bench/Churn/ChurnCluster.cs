using System.Globalization;
using HybridServing.Bench.Hosting;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.ControlPlane.Reconciliation;
using HybridServing.KubeApiTestServer;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HybridServing.Bench.Churn;

/// <summary>
/// What the churn benchmark runs against, all in this process and all over real HTTP/gRPC on 127.0.0.1:
/// the stateful Kubernetes API test server; engine pods in it (labelled as the Kubernetes home selects
/// engines, the sidecar's port in the annotation it reads), each answered by a <see cref="SidecarFleet"/>
/// sidecar; and the ControlPlane built by its own composition root (<c>AddServiceDefaults</c>,
/// <c>AddControlPlane</c> with <c>ControlPlane:Home=Kubernetes</c>) with the Kubernetes home's defaults:
/// leader election, mutation budget and all. Only the addresses are configured.
/// </summary>
internal sealed class ChurnCluster : IAsyncDisposable
{
    public const string EngineNamespace = "inference";
    public const string ControlPlaneIdentity = "controlplane-0";

    private ChurnCluster(KubeApiServer server, SidecarFleet fleet, WebApplication controlPlane)
    {
        Server = server;
        Fleet = fleet;
        ControlPlane = controlPlane;
    }

    public KubeApiServer Server { get; }
    public SidecarFleet Fleet { get; }
    public WebApplication ControlPlane { get; }
    public Reconciler Reconciler => ControlPlane.Services.GetRequiredService<Reconciler>();
    public KubernetesHome Home => ControlPlane.Services.GetRequiredService<KubernetesHome>();
    public KubernetesHomeOptions HomeOptions => ControlPlane.Services.GetRequiredService<IOptions<KubernetesHomeOptions>>().Value;

    /// <summary>Starts everything and returns once the ControlPlane leads and has every engine's sidecar facts in its picture.</summary>
    public static async Task<ChurnCluster> StartAsync(int engines, SimulatedEngineShape shape, TimeSpan loadDelay, int seed, bool adapterServices, TimeSpan readyTimeout)
    {
        var server = await KubeApiServer.StartAsync();
        SidecarFleet? fleet = null;
        WebApplication? controlPlane = null;
        try
        {
            fleet = await SidecarFleet.StartAsync(engines, shape, loadDelay, seed);
            foreach (var sidecar in fleet.Sidecars) server.Seed(EnginePod(sidecar));
            controlPlane = await StartControlPlaneAsync(server.Url, adapterServices);
            var cluster = new ChurnCluster(server, fleet, controlPlane);
            var deadline = DateTime.UtcNow + readyTimeout;
            while (!(cluster.Home.IsLeader && cluster.Reconciler.Model.PlacedEngines.Count == engines))
            {
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"the ControlPlane did not lead and see all {engines} engines within {readyTimeout.TotalSeconds:0} s (it sees {cluster.Reconciler.Model.PlacedEngines.Count}).");
                await Task.Delay(100);
            }
            return cluster;
        }
        catch
        {
            if (controlPlane is not null)
            {
                await controlPlane.StopAsync();
                await controlPlane.DisposeAsync();
            }
            if (fleet is not null) await fleet.DisposeAsync();
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>An engine pod as a GPU node would run it: Running with a pod IP, the engine role label, the sidecar's gRPC port annotated.</summary>
    private static V1Pod EnginePod(SimulatedSidecar sidecar) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            Name = sidecar.Name,
            NamespaceProperty = EngineNamespace,
            Labels = new Dictionary<string, string> { ["hybridserving.io/role"] = "engine", ["pool"] = "default" },
            Annotations = new Dictionary<string, string> { ["hybridserving.io/sidecar-grpc-port"] = sidecar.Port.ToString(CultureInfo.InvariantCulture) },
        },
        Spec = new V1PodSpec { NodeName = sidecar.Node, Containers = [new V1Container { Name = "engine", Image = "vllm/vllm-openai" }] },
        Status = new V1PodStatus { Phase = "Running", PodIP = "127.0.0.1" },
    };

    private static async Task<WebApplication> StartControlPlaneAsync(string apiServer, bool adapterServices)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{FreePorts.Get()}",
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{FreePorts.Get()}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
            ["ControlPlane:Home"] = "Kubernetes",
            ["ControlPlane:Kubernetes:ApiServerUrl"] = apiServer,
            ["ControlPlane:Kubernetes:LeaseNamespace"] = "hybridserving-system",
            ["ControlPlane:Kubernetes:Identity"] = ControlPlaneIdentity,
            ["ControlPlane:Kubernetes:AdapterServices"] = adapterServices ? "true" : "false",
        });
        // Warnings and errors only: the ControlPlane's information logs would drown the harness's progress lines.
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.AddServiceDefaults();
        builder.AddControlPlane();
        var app = builder.Build();
        app.MapControlPlane();
        await app.StartAsync();
        return app;
    }

    public async ValueTask DisposeAsync()
    {
        // The ControlPlane first: it closes its sidecar streams and API watches itself.
        await ControlPlane.StopAsync();
        await ControlPlane.DisposeAsync();
        await Fleet.DisposeAsync();
        await Server.DisposeAsync();
    }
}
