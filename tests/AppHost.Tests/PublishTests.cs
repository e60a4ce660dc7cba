using System.Diagnostics;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using HybridServing.Hosting.Kubernetes;
using HybridServing.TestKit;
using TempDirectory = HybridServing.TestKit.TempDirectory;
using k8s;
using k8s.Models;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// <c>publish</c> runs the AppHost's own app model through Aspire's publish pipeline; these tests
/// run it the same way (<see cref="DistributedApplicationTestingBuilder"/> in publish mode) and read
/// the files it writes.
/// </summary>
public sealed class PublishTests : IDisposable
{
    private readonly TempDirectory _dir = new("publish");

    public void Dispose() => _dir.Dispose();

    private async Task<string> PublishAsync(params string[] publishArgs)
    {
        var output = _dir.Combine($"out-{Guid.NewGuid():N}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        // The AppHost's own entry point parses 'publish' and hands Aspire its publish switches.
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(["publish", "--output", output, .. publishArgs], timeout.Token);
        await using var app = await builder.BuildAsync(timeout.Token);
        await app.RunAsync(timeout.Token);
        // A failing pipeline step still ends the run normally: check what was written.
        Assert.True(File.Exists(Path.Combine(output, "kustomization.yaml")), $"publish wrote no kustomization.yaml into {output}");
        return output;
    }

    [Fact]
    public async Task Committed_manifests_are_what_publish_writes_from_the_app_model()
    {
        // Regenerate with: dotnet run --project AppHost -- publish
        var output = await PublishAsync();
        var k8sDir = Path.Combine(Repository.Root, "k8s");
        var written = Directory.GetFiles(output, "*.yaml", SearchOption.AllDirectories);
        Assert.Contains(written, f => f.EndsWith(Path.Combine("crds", "loraadapters.hybridserving.io.yaml"), StringComparison.Ordinal));
        foreach (var file in written)
        {
            var committed = Path.Combine(k8sDir, Path.GetRelativePath(output, file));
            Assert.True(File.Exists(committed), $"{committed} is missing; run 'dotnet run --project AppHost -- publish'.");
            Assert.True(File.ReadAllText(committed) == File.ReadAllText(file), $"{committed} differs from what publish writes; run 'dotnet run --project AppHost -- publish'.");
        }
    }

    [Fact]
    public async Task Kubectl_renders_the_committed_kustomization()
    {
        var kubectl = Process.Start(new ProcessStartInfo("kubectl", ["kustomize", Path.Combine(Repository.Root, "k8s")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new InvalidOperationException("kubectl did not start");
        var stdout = kubectl.StandardOutput.ReadToEndAsync();
        var stderr = await kubectl.StandardError.ReadToEndAsync();
        await kubectl.WaitForExitAsync();
        Assert.True(kubectl.ExitCode == 0, $"kubectl kustomize k8s/ failed: {stderr}");
        var kinds = KubernetesYaml.LoadAllFromString(await stdout).Select(o => o.GetType().Name).ToList();
        Assert.Contains(nameof(V1CustomResourceDefinition), kinds);
        Assert.Contains(nameof(V1Deployment), kinds);
    }

    [Fact]
    public async Task Manifests_come_from_the_model_and_the_publish_options()
    {
        var output = await PublishAsync("--namespace", "serving", "--engine-replicas", "5");
        var objects = Directory.GetFiles(output, "*.yaml")
            .Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .Concat(Directory.GetFiles(Path.Combine(output, "crds")))
            .SelectMany(f => KubernetesYaml.LoadAllFromString(File.ReadAllText(f)))
            .ToList();

        var engines = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-engine");
        Assert.Equal(5, engines.Spec.Replicas);
        var pod = engines.Spec.Template;
        Assert.Equal(KubernetesManifests.EngineRole, pod.Metadata.Labels[KubernetesManifests.RoleLabel]);
        // The sample LoraAdapters select engines with podSelector.matchLabels.pool: default.
        Assert.Equal("default", pod.Metadata.Labels[KubernetesManifests.PoolLabel]);
        Assert.Equal("9001", pod.Metadata.Annotations[KubernetesManifests.SidecarGrpcPortAnnotation]);
        var sidecar = Assert.Single(pod.Spec.InitContainers);
        Assert.Equal("Always", sidecar.RestartPolicy);
        var vllm = Assert.Single(pod.Spec.Containers);
        Assert.Contains("--enable-lora", vllm.Args);
        Assert.Contains(vllm.Env, e => e.Name == "VLLM_ALLOW_RUNTIME_LORA_UPDATING" && e.Value == "true");
        // Both containers see the adapter cache at the same path: the sidecar hands vLLM local paths.
        Assert.Equal(sidecar.VolumeMounts.Single(m => m.Name == "adapters").MountPath, vllm.VolumeMounts.Single().MountPath);
        // credentialsSecretRef: the sidecar alone gets an API token (projected where in-cluster clients look), bound to get secrets.
        var token = sidecar.VolumeMounts.Single(m => m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount");
        Assert.Contains(pod.Spec.Volumes.Single(v => v.Name == token.Name).Projected.Sources, s => s.ServiceAccountToken is not null);
        var engineSa = objects.OfType<V1ServiceAccount>().Single(a => a.Metadata.Name == pod.Spec.ServiceAccountName);
        Assert.False(engineSa.AutomountServiceAccountToken);
        var binding = objects.OfType<V1ClusterRoleBinding>().Single(b => b.Subjects.Any(s => s.Name == engineSa.Metadata.Name && s.NamespaceProperty == "serving"));
        var secretsRole = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == binding.RoleRef.Name);
        Assert.Equal(["secrets"], secretsRole.Rules.Single().Resources);
        Assert.Equal(["get"], secretsRole.Rules.Single().Verbs);

        // The gateway finds the ControlPlane the model wires it to (resource "controlplane").
        var gateway = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-gateway");
        Assert.Contains(gateway.Spec.Template.Spec.Containers[0].Env, e => e.Name == "services__controlplane__grpc__0" && e.Value!.Contains("hybridserving-controlplane.serving.svc"));
        Assert.All(objects.OfType<V1Deployment>(), d => Assert.Equal("serving", d.Metadata.NamespaceProperty));

        // The Autoscaler scales the pool's Deployment through its scale subresource on the cluster.
        var autoscaler = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-autoscaler");
        var autoscalerEnv = autoscaler.Spec.Template.Spec.Containers[0].Env;
        Assert.Contains(autoscalerEnv, e => e.Name == "Autoscaler__Pools__engine__Actuator" && e.Value == "Deployment");
        Assert.Contains(autoscalerEnv, e => e.Name == "Autoscaler__Pools__engine__DeploymentName" && e.Value == "hybridserving-engine");
        Assert.Contains(objects.OfType<V1Role>(), r => r.Rules.Any(rule => rule.Resources.Contains("deployments/scale") && rule.Verbs.Contains("update")));
        // The sidecar advertises vLLM at the pod's address; the gateway reads hashed keys from the Secret.
        Assert.Contains(sidecar.Env, e => e.Name == "POD_IP" && e.ValueFrom?.FieldRef?.FieldPath == "status.podIP");
        Assert.Contains(gateway.Spec.Template.Spec.Containers[0].Env, e => e.Name == "Gateway__Tenancy__KeysFile");

        var role = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "hybridserving-controlplane");
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
