using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class EnginePodsTests
{
    private const string Annotation = "hybridserving.io/sidecar-grpc-port";

    [Fact]
    public void A_running_pod_with_an_ip_is_an_engine_at_its_annotated_port()
    {
        var (engines, problems) = EnginePods.Select([EnginePod("vllm-0", ip: "10.1.2.3", port: "9100", node: "gpu-7")], Annotation, 9001);
        var e = Assert.Single(engines);
        Assert.Empty(problems);
        Assert.Equal("vllm-0", e.Name);
        Assert.Equal("gpu-7", e.Node);
        Assert.Equal(new Uri("http://10.1.2.3:9100"), e.SidecarUrl);
        Assert.Equal("engine", e.Labels["hybridserving.io/role"]);
        Assert.Equal("a", e.Labels["pool"]);
    }

    [Fact]
    public void Without_the_annotation_the_default_port_is_used_and_ipv6_is_bracketed()
    {
        var (engines, _) = EnginePods.Select([EnginePod("v6", ip: "fd00::17", port: null)], Annotation, 9001);
        Assert.Equal(new Uri("http://[fd00::17]:9001"), Assert.Single(engines).SidecarUrl);
    }

    [Theory]
    [InlineData("Pending", "10.0.0.1", false)]
    [InlineData("Running", null, false)]
    [InlineData("Running", "", false)]
    [InlineData("Succeeded", "10.0.0.1", false)]
    [InlineData("Failed", "10.0.0.1", false)]
    [InlineData("Running", "10.0.0.1", true)]
    public void Only_running_pods_with_an_ip_are_engines(string phase, string? ip, bool engine)
    {
        var (engines, _) = EnginePods.Select([EnginePod("p", ip: ip, phase: phase)], Annotation, 9001);
        Assert.Equal(engine, engines.Count == 1);
    }

    [Fact]
    public void A_terminating_pod_is_not_an_engine()
    {
        var pod = EnginePod("p");
        pod.Metadata.DeletionTimestamp = DateTime.UtcNow;
        Assert.Empty(EnginePods.Select([pod], Annotation, 9001).Engines);
    }

    [Theory]
    [InlineData("grpc")]
    [InlineData("0")]
    [InlineData("70000")]
    [InlineData("-5")]
    [InlineData(" 9100")]
    public void A_bad_port_annotation_is_reported_naming_the_pod_and_the_annotation(string value)
    {
        var (engines, problems) = EnginePods.Select([EnginePod("bad", port: value), EnginePod("good")], Annotation, 9001);
        Assert.Equal("good", Assert.Single(engines).Name);
        var p = Assert.Single(problems);
        Assert.Contains("pod team-a/bad", p.Message);
        Assert.Contains($"{Annotation}='{value}'", p.Message);
        Assert.Contains("1-65535", p.Message);
    }

    [Fact]
    public void Pods_with_the_same_name_in_two_namespaces_are_told_apart()
    {
        var (engines, _) = EnginePods.Select([EnginePod("vllm-0", ns: "a"), EnginePod("vllm-0", ns: "b"), EnginePod("solo", ns: "a")], Annotation, 9001);
        Assert.Equal(["a/vllm-0", "b/vllm-0", "solo"], engines.Select(e => e.Name));
    }

    [Fact]
    public async Task Through_the_home_pods_become_engines_when_running_with_matching_labels_and_vanish_on_delete()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(EnginePod("ready-0", ip: "10.0.0.1"));
        server.Seed(EnginePod("starting-0", ip: null, phase: "Pending"));
        server.Seed(EnginePod("other-role", role: "gateway"));
        await using var home = Home(server);
        var changed = 0;
        home.Changed += () => Interlocked.Increment(ref changed);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Engines.Count == 1, "the first picture");
        Assert.Equal("ready-0", home.Current.Engines[0].Name);
        // The selector is applied by the server: pods of other roles are never even listed.
        Assert.Contains(server.Requests, r => r.Verb == "list" && r.Resource == "pods" && r.Query.Contains("labelSelector=hybridserving.io%2Frole%3Dengine"));
        Assert.DoesNotContain("team-a/other-role", home.PodInformer.Objects.Keys);

        // The starting pod gets its IP and runs: it becomes an engine.
        var starting = server.Get<V1Pod>(Ns, "starting-0")!;
        starting.Status = new V1PodStatus { Phase = "Running", PodIP = "10.0.0.2" };
        await client.CoreV1.ReplaceNamespacedPodStatusAsync(starting, "starting-0", Ns);
        await WaitUntilAsync(() => home.Current.Engines.Count == 2, "the started pod is an engine");
        Assert.Equal(new Uri("http://10.0.0.2:9100"), home.Current.Engines.Single(e => e.Name == "starting-0").SidecarUrl);

        // A pod relabelled out of the pool leaves; a deleted pod vanishes.
        var ready = server.Get<V1Pod>(Ns, "ready-0")!;
        ready.Metadata.Labels["hybridserving.io/role"] = "drained";
        await client.CoreV1.ReplaceNamespacedPodAsync(ready, "ready-0", Ns);
        await client.CoreV1.DeleteNamespacedPodAsync("starting-0", Ns, new V1DeleteOptions { GracePeriodSeconds = 0 });
        await WaitUntilAsync(() => home.Current.Engines.Count == 0, "both pods are gone from the engines");
        Assert.True(changed >= 3);
    }
}
