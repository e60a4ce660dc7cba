using System.Text.RegularExpressions;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Resources;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;

namespace HybridServing.ControlPlane.Tests.Resources;

/// <summary>
/// The sample LoraAdapters of the cluster quick start (<c>k8s/samples/</c>, docs/cluster-quickstart.md): valid by
/// the same reader and validator the ControlPlane applies, placeable on the engine pool <c>k8s/</c> deploys, and
/// accepted by kubectl against the committed CRD, with <c>kubectl get lora</c> showing them.
/// </summary>
public sealed class ClusterSamplesTests
{
    private static string Root => CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("repository root not found");

    private static string[] SampleFiles() => [.. Directory.GetFiles(Path.Combine(Root, "k8s", "samples"), "*.yaml").Order(StringComparer.Ordinal)];

    private static List<(string File, LoraAdapter Adapter)> ReadSamples()
    {
        var samples = new List<(string, LoraAdapter)>();
        foreach (var file in SampleFiles())
        {
            var read = ManifestReader.Read(file, File.ReadAllText(file));
            Assert.True(read.Error is null, $"{file}: {read.Error}");
            foreach (var doc in read.Documents)
            {
                Assert.True(doc.Error is null, $"{file}: {doc.Error}");
                var problems = LoraAdapterValidator.ValidateAll(doc.Adapter!).ToList();
                Assert.True(problems.Count == 0, $"{file}: {string.Join("; ", problems)}");
                samples.Add((file, doc.Adapter!));
            }
        }
        return samples;
    }

    [Fact]
    public void Samples_are_valid_LoraAdapters_from_remote_sources()
    {
        var samples = ReadSamples();
        Assert.Equal([AdapterSourceTypes.HuggingFace, AdapterSourceTypes.S3], samples.Select(s => s.Adapter.Spec.AdapterSource.Type).Order(StringComparer.Ordinal));
        // Local paths do not exist on a cluster's engines; the samples must work there.
        Assert.All(samples, s => Assert.NotEqual(AdapterSourceTypes.Local, s.Adapter.Spec.AdapterSource.Type));
        // The S3 sample reads private objects: it names the Secret the quick start tells users to create.
        var s3 = samples.Single(s => s.Adapter.Spec.AdapterSource.Type == AdapterSourceTypes.S3).Adapter;
        Assert.Equal("s3-adapters", s3.Spec.CredentialsSecretRef?.Name);
    }

    [Fact]
    public void Samples_select_the_engine_pool_that_k8s_deploys()
    {
        var pool = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(Root, "k8s", "engine-pool.yaml")))
            .OfType<V1Deployment>().Single(d => d.Metadata.Name == "hybridserving-engine");
        var vllm = pool.Spec.Template.Spec.Containers.Single(c => c.Name == "vllm");
        var model = vllm.Args[vllm.Args.IndexOf("--model") + 1];
        var maxRank = int.Parse(vllm.Args[vllm.Args.IndexOf("--max-lora-rank") + 1], System.Globalization.CultureInfo.InvariantCulture);
        var labels = pool.Spec.Template.Metadata.Labels;
        Assert.True(maxRank >= 8, "the Hugging Face sample's adapter has rank 8");
        foreach (var (file, adapter) in ReadSamples())
        {
            Assert.True(adapter.Spec.BaseModel == model, $"{file}: baseModel {adapter.Spec.BaseModel} is not the pool's --model {model}; nothing could be placed");
            foreach (var (key, value) in adapter.Spec.DeploymentConfig?.PodSelector?.MatchLabels ?? new Dictionary<string, string>())
                Assert.True(labels.TryGetValue(key, out var v) && v == value, $"{file}: podSelector {key}={value} matches no engine pod of k8s/engine-pool.yaml");
        }
    }

    [Fact]
    public async Task Samples_apply_with_kubectl_against_the_committed_CRD_and_show_in_kubectl_get_lora()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var kubectl = new Kubectl(server) { WorkingDirectory = Root };
        await kubectl.RunAsync("apply", "-f", "k8s/crds/");
        await kubectl.RunAsync("wait", "--for=condition=Established", "--timeout=10s", $"crd/{LoraAdapter.Plural}.{LoraAdapter.Group}");

        var applied = await kubectl.RunAsync("apply", "-f", "k8s/samples/", "--validate=strict", "-o", "name");
        Assert.Equal(
            ["loraadapter.hybridserving.io/food-review", "loraadapter.hybridserving.io/team-adapters"],
            applied.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));

        var listed = await kubectl.RunAsync("get", "lora", "-A");
        Assert.Matches(@"^NAMESPACE\s+NAME\s+BASE MODEL\s+SOURCE\s+PHASE\s+READY\s+AGE\n", listed);
        Assert.Matches(@"\ndefault\s+food-review\s+meta-llama/Llama-3\.1-8B-Instruct\s+huggingface\s", listed);
        Assert.Matches(@"\ndefault\s+team-adapters\s+meta-llama/Llama-3\.1-8B-Instruct\s+s3\s", listed);
        Assert.Equal(2, Regex.Matches(listed, @"\ndefault\s").Count);
    }
}
