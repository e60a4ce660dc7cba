using HybridServing.AppHost.Orchestration;
using HybridServing.AppHost.Publishing;
using k8s;
using k8s.Models;

namespace HybridServing.AppHost.Tests;

public sealed class PublishTests
{
    [Fact]
    public void Committed_manifests_are_what_publish_generates()
    {
        // Regenerate with: dotnet run --project AppHost -- publish
        var k8sDir = Path.Combine(ServiceBinaries.FindRepositoryRoot(), "k8s");
        foreach (var (file, yaml) in KubernetesManifests.Build(new PublishOptions()))
        {
            var path = Path.Combine(k8sDir, file);
            Assert.True(File.Exists(path), $"{path} is missing; run 'dotnet run --project AppHost -- publish'.");
            Assert.True(File.ReadAllText(path) == yaml, $"{path} differs from what publish generates; run 'dotnet run --project AppHost -- publish'.");
        }
    }

    [Fact]
    public void Manifests_are_valid_typed_kubernetes_objects_wired_like_the_local_stack()
    {
        var objects = KubernetesManifests.Build(new PublishOptions { Namespace = "serving", EngineReplicas = 5 })
            .Where(f => f.File != "kustomization.yaml")
            .SelectMany(f => KubernetesYaml.LoadAllFromString(f.Yaml))
            .ToList();

        var engines = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-engine");
        Assert.Equal(5, engines.Spec.Replicas);
        var pod = engines.Spec.Template;
        Assert.Equal(KubernetesManifests.EngineRole, pod.Metadata.Labels[KubernetesManifests.RoleLabel]);
        Assert.Equal("9001", pod.Metadata.Annotations[KubernetesManifests.SidecarGrpcPortAnnotation]);
        var sidecar = Assert.Single(pod.Spec.InitContainers);
        Assert.Equal("Always", sidecar.RestartPolicy);
        Assert.Contains(sidecar.Env, e => e.Name == "Sidecar__EngineUrl" && e.Value == "http://127.0.0.1:8000");
        var vllm = Assert.Single(pod.Spec.Containers);
        Assert.Contains("--enable-lora", vllm.Args);
        Assert.Contains(vllm.Env, e => e.Name == "VLLM_ALLOW_RUNTIME_LORA_UPDATING" && e.Value == "true");
        // Both containers see the adapter cache at the same path: the sidecar hands vLLM local paths.
        Assert.Equal(sidecar.VolumeMounts.Single().MountPath, vllm.VolumeMounts.Single().MountPath);

        var gateway = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-gateway");
        Assert.Contains(gateway.Spec.Template.Spec.Containers[0].Env, e => e.Name == "services__controlplane__grpc__0" && e.Value!.Contains(".serving.svc"));
        Assert.All(objects.OfType<V1Deployment>(), d => Assert.Equal("serving", d.Metadata.NamespaceProperty));

        var role = objects.OfType<V1ClusterRole>().Single();
        Assert.Contains(role.Rules, r => r.Resources.Contains("loraadapters/status") && r.Verbs.Contains("patch"));
    }

    [Theory]
    [InlineData(new[] { "--namespace", "Bad_Name" }, "--namespace")]
    [InlineData(new[] { "--engine-replicas", "0" }, "--engine-replicas")]
    [InlineData(new[] { "--max-lora-rank", "12" }, "--max-lora-rank")]
    [InlineData(new[] { "--max-loras", "16", "--max-cpu-loras", "8" }, "--max-cpu-loras")]
    [InlineData(new[] { "--what" }, "--what")]
    public void Wrong_publish_options_name_the_flag(string[] args, string flag)
    {
        Assert.Equal(flag, Assert.Throws<AppHostOptionsException>(() => PublishOptions.Parse(args)).Flag);
    }
}
