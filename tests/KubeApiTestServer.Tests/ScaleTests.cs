using System.Net;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class ScaleTests
{
    private static V1Deployment Deployment(string name, int replicas) => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns },
        Spec = new V1DeploymentSpec
        {
            Replicas = replicas,
            Selector = new V1LabelSelector
            {
                MatchLabels = new Dictionary<string, string> { ["app"] = name },
                MatchExpressions = [new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = "In", Values = ["b", "a"] }],
            },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["app"] = name, ["tier"] = "a" } },
                Spec = new V1PodSpec { Containers = [new V1Container { Name = "engine", Image = "vllm/vllm-openai:test" }] },
            },
        },
    };

    [Fact]
    public async Task Reading_scale_reports_desired_replicas_the_status_replicas_and_the_selector()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("engine", 2), Ns);
        var withStatus = await client.AppsV1.PatchNamespacedDeploymentStatusAsync(new V1Patch("{\"status\":{\"replicas\":1}}", V1Patch.PatchType.MergePatch), "engine", Ns);

        var scale = await client.AppsV1.ReadNamespacedDeploymentScaleAsync("engine", Ns);

        Assert.Equal("autoscaling/v1", scale.ApiVersion);
        Assert.Equal("Scale", scale.Kind);
        Assert.Equal(2, scale.Spec.Replicas);
        Assert.Equal(1, scale.Status.Replicas);
        Assert.Equal("app=engine,tier in (a,b)", scale.Status.Selector);
        Assert.Equal(withStatus.Metadata.ResourceVersion, scale.Metadata.ResourceVersion);
        Assert.Equal(withStatus.Metadata.Uid, scale.Metadata.Uid);
    }

    [Fact]
    public async Task Replacing_scale_changes_spec_replicas_and_generation_but_not_status_and_a_stale_version_is_409()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("engine", 1), Ns);
        await client.AppsV1.PatchNamespacedDeploymentStatusAsync(new V1Patch("{\"status\":{\"replicas\":1}}", V1Patch.PatchType.MergePatch), "engine", Ns);
        var before = await client.AppsV1.ReadNamespacedDeploymentScaleAsync("engine", Ns);
        await using var events = new WatchCollector<V1Deployment>((onError, ct) =>
            client.AppsV1.WatchListNamespacedDeploymentAsync(Ns, resourceVersion: before.Metadata.ResourceVersion, onError: onError, cancellationToken: ct));

        before.Spec.Replicas = 4;
        var after = await client.AppsV1.ReplaceNamespacedDeploymentScaleAsync(before, "engine", Ns);

        Assert.Equal(4, after.Spec.Replicas);
        Assert.Equal(1, after.Status.Replicas);
        Assert.True(Rv(after) > Rv(before));
        var stored = server.Get<V1Deployment>(Ns, "engine")!;
        Assert.Equal(4, stored.Spec.Replicas);
        Assert.Equal(2, stored.Metadata.Generation);
        Assert.Equal("vllm/vllm-openai:test", stored.Spec.Template.Spec.Containers[0].Image);
        var modified = await events.NextAsync();
        Assert.Equal(WatchEventType.Modified, modified!.Value.Type);
        Assert.Equal(4, modified.Value.Object.Spec.Replicas);

        before.Spec.Replicas = 7;
        var stale = await ExpectStatus(HttpStatusCode.Conflict, () => client.AppsV1.ReplaceNamespacedDeploymentScaleAsync(before, "engine", Ns));
        Assert.Equal("Conflict", Status(stale).Reason);
        Assert.Equal(4, server.Get<V1Deployment>(Ns, "engine")!.Spec.Replicas);
    }

    [Theory]
    [InlineData(V1Patch.PatchType.MergePatch, "{\"spec\":{\"replicas\":3}}")]
    [InlineData(V1Patch.PatchType.StrategicMergePatch, "{\"spec\":{\"replicas\":3}}")]
    [InlineData(V1Patch.PatchType.JsonPatch, "[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]")]
    public async Task Patching_scale_sets_replicas(V1Patch.PatchType type, string body)
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("engine", 1), Ns);

        var scale = await client.AppsV1.PatchNamespacedDeploymentScaleAsync(new V1Patch(body, type), "engine", Ns);

        Assert.Equal(3, scale.Spec.Replicas);
        Assert.Equal(3, server.Get<V1Deployment>(Ns, "engine")!.Spec.Replicas);
    }

    [Fact]
    public async Task Negative_replicas_are_422_stale_patch_preconditions_409_and_missing_deployments_404()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var created = await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("engine", 1), Ns);
        await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch("{\"metadata\":{\"labels\":{\"a\":\"b\"}}}", V1Patch.PatchType.MergePatch), "engine", Ns);

        var invalid = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.AppsV1.PatchNamespacedDeploymentScaleAsync(
            new V1Patch("{\"spec\":{\"replicas\":-1}}", V1Patch.PatchType.MergePatch), "engine", Ns));
        Assert.Contains("spec.replicas", Status(invalid).Message);
        await ExpectStatus(HttpStatusCode.Conflict, () => client.AppsV1.PatchNamespacedDeploymentScaleAsync(
            new V1Patch("{\"metadata\":{\"resourceVersion\":\"" + created.Metadata.ResourceVersion + "\"},\"spec\":{\"replicas\":5}}", V1Patch.PatchType.MergePatch), "engine", Ns));
        await ExpectStatus(HttpStatusCode.NotFound, () => client.AppsV1.ReadNamespacedDeploymentScaleAsync("missing", Ns));
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReadNamespacedConfigMapAsync("engine/scale", Ns));
        Assert.Equal(1, server.Get<V1Deployment>(Ns, "engine")!.Spec.Replicas);
    }
}
