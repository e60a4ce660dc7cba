using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Recording;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;

namespace HybridServing.Autoscaler.Tests.Actuation;

/// <summary>The Kubernetes actuator against the API test server over HTTP: scale, conflicting writers, a missing Deployment.</summary>
public sealed class DeploymentScaleActuatorTests
{
    private const string Ns = "default";

    private static readonly PoolOptions Pool = new()
    {
        Actuator = ActuatorKind.Deployment, DeploymentNamespace = Ns, DeploymentName = "engines", MaxEngines = 5,
        EngineSelector = new() { ["pool"] = "default" },
    };

    private static V1Deployment Deployment(int replicas) => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = new V1ObjectMeta { Name = "engines", NamespaceProperty = Ns },
        Spec = new V1DeploymentSpec
        {
            Replicas = replicas,
            Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["pool"] = "default" } },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["pool"] = "default" } },
                Spec = new V1PodSpec { Containers = [new V1Container { Name = "engine", Image = "vllm/vllm-openai:test" }] },
            },
        },
    };

    private static ScaleDecision Decision(int current, int desired) =>
        new("default", DateTimeOffset.UnixEpoch, current, desired, ScaleMode.Stable, ScaleReasons.StableLoad, "test", 0, 0, null);

    [Fact]
    public async Task Reads_and_writes_the_scale_subresource()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment(1), Ns);
        var actuator = new DeploymentScaleActuator("default", Pool, client);

        Assert.Equal(1, await actuator.CurrentEnginesAsync([], CancellationToken.None));
        var action = await actuator.ApplyAsync(Decision(1, 3), [], CancellationToken.None);
        Assert.Equal("scaled deployment default/engines from 1 to 3 replicas", action);
        Assert.Equal(3, (await client.AppsV1.ReadNamespacedDeploymentAsync("engines", Ns)).Spec.Replicas);
        Assert.Contains(server.Requests, r => r.Method == "PUT" && r.Path.EndsWith("/deployments/engines/scale", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_conflicting_writer_is_retried_on_fresh_data_not_overwritten_blindly()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var admin = server.CreateClient();
        await admin.AppsV1.CreateNamespacedDeploymentAsync(Deployment(1), Ns);
        // Another writer scales the Deployment between our read and our write, once.
        var rival = new RivalWriter(admin);
        using var client = new Kubernetes(server.ClientConfiguration(), rival);
        var actuator = new DeploymentScaleActuator("default", Pool, client);

        var action = await actuator.ApplyAsync(Decision(1, 4), [], CancellationToken.None);

        Assert.Equal(1, rival.Writes);
        Assert.Equal("scaled deployment default/engines from 2 to 4 replicas after 1 conflicting write(s)", action);
        Assert.Equal(4, (await admin.AppsV1.ReadNamespacedDeploymentAsync("engines", Ns)).Spec.Replicas);
        var puts = server.Requests.Where(r => r.Method == "PUT" && r.Subresource == "scale").Select(r => r.StatusCode).ToList();
        Assert.Equal([200, 409, 200], puts); // the rival's write, our stale write, our write on fresh data
    }

    [Fact]
    public async Task A_missing_deployment_is_reported_and_evented_not_created()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var actuator = new DeploymentScaleActuator("default", Pool, client);

        var read = await Assert.ThrowsAsync<ActuatorException>(() => actuator.CurrentEnginesAsync([], CancellationToken.None));
        Assert.Equal("DeploymentMissing", read.Reason);
        Assert.Equal("deployment default/engines not found: create the engine pool's Deployment or fix Autoscaler:Pools:default:DeploymentName", read.Message);
        var write = await Assert.ThrowsAsync<ActuatorException>(() => actuator.ApplyAsync(Decision(0, 1), [], CancellationToken.None));
        Assert.Equal("DeploymentMissing", write.Reason);
        Assert.Empty(server.List<V1Deployment>(Ns));

        var events = new KubernetesEvents(client, TimeProvider.System, NullLogger<KubernetesEvents>.Instance);
        await events.RecordAsync(Pool, Decision(0, 1), "failed", new ActuationFailure(write.Reason, write.Message), CancellationToken.None);
        var ev = Assert.Single(server.List<Corev1Event>(Ns));
        Assert.Equal("DeploymentMissing", ev.Reason);
        Assert.Equal("Warning", ev.Type);
        Assert.Equal("Deployment", ev.InvolvedObject.Kind);
        Assert.Equal("engines", ev.InvolvedObject.Name);
        Assert.Equal(KubernetesEvents.Component, ev.Source.Component);
    }

    [Fact]
    public async Task Events_are_written_on_changes_not_on_steady_ticks()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var events = new KubernetesEvents(client, TimeProvider.System, NullLogger<KubernetesEvents>.Instance);
        await events.RecordAsync(Pool, Decision(1, 2), "scaled", null, CancellationToken.None);
        await events.RecordAsync(Pool, Decision(2, 2), "no change", null, CancellationToken.None);
        await events.RecordAsync(Pool, Decision(2, 2), "no change", null, CancellationToken.None);
        var ev = Assert.Single(server.List<Corev1Event>(Ns));
        Assert.Equal(ScaleReasons.StableLoad, ev.Reason);
        Assert.Equal("Normal", ev.Type);
        Assert.StartsWith("1 → 2 engines (Stable): test; scaled", ev.Message, StringComparison.Ordinal);
    }

    /// <summary>Before the first PUT of the scale subresource, scales the Deployment to 2 through another client.</summary>
    private sealed class RivalWriter(Kubernetes admin) : DelegatingHandler
    {
        public int Writes { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Writes == 0 && request.Method == HttpMethod.Put && request.RequestUri!.AbsolutePath.EndsWith("/scale", StringComparison.Ordinal))
            {
                Writes++;
                var scale = await admin.AppsV1.ReadNamespacedDeploymentScaleAsync("engines", Ns, cancellationToken: cancellationToken);
                scale.Spec.Replicas = 2;
                await admin.AppsV1.ReplaceNamespacedDeploymentScaleAsync(scale, "engines", Ns, cancellationToken: cancellationToken);
            }
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
