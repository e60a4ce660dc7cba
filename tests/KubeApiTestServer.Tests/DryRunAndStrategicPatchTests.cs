using System.Net;
using System.Net.Http.Headers;
using System.Text;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class DryRunAndStrategicPatchTests
{
    private static V1Deployment Deployment() => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = new V1ObjectMeta { Name = "engine", NamespaceProperty = Ns, Finalizers = ["a.io/x"] },
        Spec = new V1DeploymentSpec
        {
            Replicas = 1,
            Selector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "engine" } },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["app"] = "engine" } },
                Spec = new V1PodSpec
                {
                    Containers =
                    [
                        new V1Container
                        {
                            Name = "engine",
                            Image = "vllm:1",
                            Args = ["--port", "8000"],
                            Env = [new V1EnvVar { Name = "A", Value = "1" }, new V1EnvVar { Name = "B", Value = "2" }],
                            Ports = [new V1ContainerPort { ContainerPort = 8000, Name = "http" }, new V1ContainerPort { ContainerPort = 9000, Name = "metrics" }],
                            VolumeMounts = [new V1VolumeMount { MountPath = "/models", Name = "models" }],
                            ReadinessProbe = new V1Probe { HttpGet = new V1HTTPGetAction { Path = "/health", Port = 8000 } },
                        },
                        new V1Container { Name = "sidecar", Image = "sidecar:1" },
                    ],
                    Volumes = [new V1Volume { Name = "models", EmptyDir = new V1EmptyDirVolumeSource() }],
                },
            },
        },
    };

    [Fact]
    public async Task Dry_run_writes_validate_and_answer_the_would_be_object_but_store_nothing_and_emit_no_event()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var created = await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment(), Ns);
        var rv = server.ResourceVersion;
        await using var events = new WatchCollector<V1Deployment>((onError, ct) =>
            client.AppsV1.WatchListNamespacedDeploymentAsync(Ns, resourceVersion: created.Metadata.ResourceVersion, onError: onError, cancellationToken: ct));

        var wouldCreate = Deployment();
        wouldCreate.Metadata.Name = "other";
        var dryCreated = await client.AppsV1.CreateNamespacedDeploymentAsync(wouldCreate, Ns, dryRun: "All");
        var dryPatched = await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch("{\"spec\":{\"replicas\":5}}", V1Patch.PatchType.MergePatch), "engine", Ns, dryRun: "All");
        var replacement = server.Get<V1Deployment>(Ns, "engine")!;
        replacement.Spec.Replicas = 6;
        var dryReplaced = await client.AppsV1.ReplaceNamespacedDeploymentAsync(replacement, "engine", Ns, dryRun: "All");
        var dryScaled = await client.AppsV1.PatchNamespacedDeploymentScaleAsync(new V1Patch("{\"spec\":{\"replicas\":7}}", V1Patch.PatchType.MergePatch), "engine", Ns, dryRun: "All");
        await client.AppsV1.DeleteNamespacedDeploymentAsync("engine", Ns, dryRun: "All");
        await client.AppsV1.DeleteNamespacedDeploymentAsync("engine", Ns, new V1DeleteOptions { DryRun = ["All"] });
        var invalid = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.AppsV1.PatchNamespacedDeploymentScaleAsync(
            new V1Patch("{\"spec\":{\"replicas\":-3}}", V1Patch.PatchType.MergePatch), "engine", Ns, dryRun: "All"));
        await ExpectStatus(HttpStatusCode.BadRequest, () => client.AppsV1.CreateNamespacedDeploymentAsync(wouldCreate, Ns, dryRun: "Some"));

        Assert.Equal("other", dryCreated.Metadata.Name);
        Assert.Null(dryCreated.Metadata.ResourceVersion);
        Assert.Equal(5, dryPatched.Spec.Replicas);
        Assert.Equal(2, dryPatched.Metadata.Generation);
        Assert.Equal(created.Metadata.ResourceVersion, dryPatched.Metadata.ResourceVersion);
        Assert.Equal(6, dryReplaced.Spec.Replicas);
        Assert.Equal(7, dryScaled.Spec.Replicas);
        Assert.Contains("spec.replicas", Status(invalid).Message);
        Assert.Equal(rv, server.ResourceVersion);
        Assert.Null(server.Get<V1Deployment>(Ns, "other"));
        var stored = server.Get<V1Deployment>(Ns, "engine")!;
        Assert.Equal(1, stored.Spec.Replicas);
        Assert.Null(stored.Metadata.DeletionTimestamp);
        await Task.Delay(200);
        Assert.Empty(events.Drain());
    }

    [Fact]
    public async Task Strategic_merge_patch_merges_containers_env_ports_and_mounts_by_key_and_obeys_directives()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment(), Ns);

        // What kubectl apply sends after the image, one env var and one port changed and B was removed.
        const string patch = """
            {"metadata":{"$deleteFromPrimitiveList/finalizers":["a.io/x"],"finalizers":["b.io/y"]},
             "spec":{"template":{"spec":{
               "$setElementOrder/containers":[{"name":"sidecar"},{"name":"engine"}],
               "containers":[{"name":"engine","image":"vllm:2",
                 "$setElementOrder/env":[{"name":"C"},{"name":"A"}],
                 "env":[{"name":"A","value":"10"},{"name":"C","value":"3"},{"$patch":"delete","name":"B"}],
                 "ports":[{"containerPort":9000,"name":"prom"}],
                 "volumeMounts":[{"mountPath":"/cache","name":"models","subPath":"cache"}]}],
               "volumes":[{"name":"models","$retainKeys":["name","hostPath"],"hostPath":{"path":"/m"}}]}}}}
            """;
        var patched = await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(patch, V1Patch.PatchType.StrategicMergePatch), "engine", Ns);

        var pod = patched.Spec.Template.Spec;
        Assert.Equal(["sidecar", "engine"], pod.Containers.Select(c => c.Name));
        var engine = pod.Containers[1];
        Assert.Equal("vllm:2", engine.Image);
        Assert.Equal(["--port", "8000"], engine.Args);
        Assert.Equal("/health", engine.ReadinessProbe.HttpGet.Path);
        Assert.Equal(["C=3", "A=10"], engine.Env.Select(e => e.Name + "=" + e.Value));
        Assert.Equal(["8000:http", "9000:prom"], engine.Ports.Select(p => p.ContainerPort + ":" + p.Name));
        Assert.Equal(["/models", "/cache"], engine.VolumeMounts.Select(m => m.MountPath));
        Assert.Equal("sidecar:1", pod.Containers[0].Image);
        Assert.Equal("/m", pod.Volumes.Single().HostPath.Path);
        Assert.Null(pod.Volumes.Single().EmptyDir);
        Assert.Equal(["b.io/y"], patched.Metadata.Finalizers);
        Assert.DoesNotContain("$", KubernetesJson.Serialize(server.Get<V1Deployment>(Ns, "engine")));
    }

    [Fact]
    public async Task Strategic_merge_patch_replace_and_delete_directives_and_atomic_lists()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment(), Ns);

        var patched = await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(
            """{"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"x:1"}],"volumes":[{"name":"models","$patch":"delete"}]}}}}""",
            V1Patch.PatchType.StrategicMergePatch), "engine", Ns);
        Assert.Equal(["only"], patched.Spec.Template.Spec.Containers.Select(c => c.Name));
        Assert.Empty(patched.Spec.Template.Spec.Volumes ?? []);

        patched = await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(
            """{"spec":{"template":{"spec":{"containers":[{"name":"only","args":["a"]}]}}},"metadata":{"labels":{"$patch":"replace","fresh":"1"}}}""",
            V1Patch.PatchType.StrategicMergePatch), "engine", Ns);
        Assert.Equal(["a"], patched.Spec.Template.Spec.Containers.Single().Args);
        Assert.Equal(new Dictionary<string, string> { ["fresh"] = "1" }, patched.Metadata.Labels);

        var missingKey = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch(
            """{"spec":{"template":{"spec":{"containers":[{"image":"nameless"}]}}}}""", V1Patch.PatchType.StrategicMergePatch), "engine", Ns));
        Assert.Contains("merge key: name", Status(missingKey).Message);
        Assert.Equal("only", server.Get<V1Deployment>(Ns, "engine")!.Spec.Template.Spec.Containers.Single().Name);
    }

    [Fact]
    public async Task Strategic_merge_patch_on_a_custom_resource_and_protobuf_bodies_are_415()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };

        var crd = await http.PatchAsync("/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters/a",
            new StringContent("{}", Encoding.UTF8, "application/strategic-merge-patch+json"));
        using var protobuf = new ByteArrayContent([0x6b, 0x38, 0x73, 0x00]);
        protobuf.Headers.ContentType = new MediaTypeHeaderValue("application/vnd.kubernetes.protobuf");
        var created = await http.PostAsync("/api/v1/namespaces", protobuf);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, crd.StatusCode);
        Assert.Contains("strategic merge patch is not supported for custom resources", await crd.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, created.StatusCode);
        Assert.Contains("application/vnd.kubernetes.protobuf", await created.Content.ReadAsStringAsync());
        Assert.DoesNotContain(server.List<V1Namespace>(), n => n.Metadata.Name != "default");
    }
}
