using System.Text;
using System.Text.Json;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Resources;
using HybridServing.TestKit;
using HybridServing.ControlPlane.Kubernetes;
using Xunit.Abstractions;

namespace HybridServing.ControlPlane.Tests.Fuzz;

/// <summary>
/// Mutational fuzzing of LoraAdapter parsing: YAML manifests through <see cref="ManifestReader"/> (the local home) and
/// JSON objects through the Kubernetes JSON reader (the Kubernetes home), each followed by <see cref="LoraAdapterValidator"/>.
/// Properties: the YAML reader never throws (a bad file is a message); JSON fails only with <see cref="JsonException"/>
/// (the Kubernetes home turns it into InvalidSpec); the validator never throws on whatever was read.
/// </summary>
public sealed class LoraAdapterFuzzTests(ITestOutputHelper output)
{
    private void Report(FuzzReport report)
    {
        output.WriteLine(report.ToString());
        if (report.Problems() is { } problems) Assert.Fail(problems);
    }

    [Fact]
    public void LoraAdapter_YAML_is_read_or_refused_with_a_message_never_a_crash() =>
        Report(Fuzzer.Run("LoraAdapter YAML", Fuzzer.Corpus("ControlPlane.Tests", "loraadapter-yaml"), 8_000, bytes =>
        {
            var file = ManifestReader.Read("fuzz.yaml", Encoding.UTF8.GetString(bytes));
            if (file.Documents is null) throw new InvalidOperationException("no document list");
            foreach (var d in file.Documents)
                if (d.Adapter is { } adapter && d.Error is null) _ = LoraAdapterValidator.ValidateAll(adapter).ToList();
        }));

    [Fact]
    public void LoraAdapter_JSON_from_the_API_server_is_declared_or_named_with_its_read_error_never_a_crash() =>
        Report(Fuzzer.Run("LoraAdapter JSON", Fuzzer.Corpus("ControlPlane.Tests", "loraadapter-json"), 20_000, bytes =>
        {
            JsonDocument doc;
            try { doc = JsonDocument.Parse(bytes); }
            catch (JsonException) { return; } // the API server only sends JSON
            using (doc)
            {
                // The informer keys objects by metadata, so an object without it never reaches Declare.
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("metadata", out var m) || m.ValueKind != JsonValueKind.Object) return;
                var declared = KubernetesHome.Declare("team-b/s3", doc.RootElement);
                if (declared.ReadError is null && declared.Resource.Spec is not null) _ = LoraAdapterValidator.ValidateAll(declared.Resource).ToList();
            }
        }));

    /// <summary>A crash the fuzzer found: a condition time that is not RFC 3339 made the client's converter throw
    /// FormatException out of the Kubernetes home's snapshot (no LoraAdapter at all was reconciled); now InvalidSpec naming it.</summary>
    [Theory]
    [InlineData("""{"metadata":{"name":"s3","namespace":"team-b"},"spec":{"baseModel":"m"},"status":{"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-01Z"}]}}""")]
    [InlineData("""{"metadata":{"name":"s3","namespace":"team-b","creationTimestamp":"yesterday"},"spec":{"baseModel":"m"}}""")]
    public void A_time_that_is_not_RFC3339_is_a_read_error_not_a_crash(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var declared = KubernetesHome.Declare("team-b/s3", doc.RootElement);
        Assert.Equal(("s3", "team-b"), (declared.Resource.Metadata.Name, declared.Resource.Metadata.NamespaceProperty));
        Assert.Contains("RFC3339", declared.ReadError);
    }

    /// <summary>Inputs the fuzzer found that made YamlDotNet throw InvalidOperationException / ArgumentException
    /// (not YamlException) out of the manifest reader, stopping the local home's reload; now a syntax error for the file.</summary>
    [Theory]
    [InlineData("YXBpVmVyc2lvbjogaHlicmlkc2VydmluZy5pby92MWFscGhhMQpraW5kOiBMb3JhQWRhcHRlcgptZXRhZGF0YToKICBuYW1lOiB7aHViCiAgbmFtZXNwYWMAOiB0ZWFtLWEKc3BlYzoKICBiYXNlTW9kZWw6IHRlc3QvdGlueQogIGNyZWRlbnRpYWxzU2VjcmV0UmX/OgogICAgbmFtZTogaGYtY3JlZAogIGFkYXB0ZXJTb3VyY2U6CiAgICB0eXBlOiBodWdnaW5nZmFjZQogICAgcmVwb3NpdG9yeTogb3JnL2xvcmFzCiAgICByZXZpc2lvbjogdjIKICAgIGFkYWB0ZXJzLCBjaGF0XQogIGRlcGxveW1lbnRDbw==")]
    [InlineData("IyBDdXN0b21lci1zdXBwb3J0IGFkYXB0ZXJzLCBkaXNjb3ZlcmVkIGJ5IHBhdHRlcm4gZnJvbSBhIGxvY2FsIGZvbGRlci4KIyBUaGUgZm9sZGVyIC4vYWRhcHRlcnMgKHJlbGF0aXZlIHRvIHRoaXMgZmlsZSkgaXMgZ2VuZXJhdGVkIGJ5IHRoZSBBcHBIb3N0IG9uIGZpcnN0IHJ1bi4KIyBEZWxldGUgdGhpcyBmaWxlIHdoaWxlIHRoZSBzdGFjayBydW5zIGFuZCBpdHMgYWRhcHRlcnMgYXJlIHVubG9hZGVkIGZyb20gZXZlcnkgZW5naW5lLgphcGlWZXJzaW9uOiBoeWJyaWRzZXJ2aW5nLmlvL3YxYWxwaGExCmtpbmQ6IExvcmFBZGFwdGVyCm1ldGFkYXRhOgogIG5hbWU6IHN1cHBvcnQKICBuYW1lc3BhY2U6IGRlZmF1bHQKc3BlYzoKICBiYXNlTW9kZWw6IG1ldGEtbGxhbWEvTGxhbWEtMy4xLThCLUluc3RydWN0CiAgYWRhcHRlclNvdXJjZToKICAgIHR5cGU6IGxvY2FsCiAgICByZXBvc2l0b3J5OiAuL2FkYXB0ZXJzCiAgICBwYXR0ZXJuOiAic3VwcG9ydC0iKiIKICBkZXBsb3ltZW50Q29uZmlnOgogICAgbG9hZE9uU3RhcnR1cDogdHJ1ZQogICAgcG9kU2VsZWN0b3I6CiAgICAgIG1hdGNoTGFiZWxzOgogICAgICAgIHBvb2w6IGRlZmFlZml4OiAibG9yYS0ifQotLS0K")]
    public void Yaml_the_parser_chokes_on_is_a_syntax_error_for_the_file(string base64)
    {
        var file = ManifestReader.Read("bad.yaml", Encoding.UTF8.GetString(Convert.FromBase64String(base64)));
        Assert.StartsWith("bad.yaml: YAML syntax error", file.Error);
        Assert.Empty(file.Documents);
    }

    /// <summary>Shapes the fuzzer found that crashed reading or validating (InvalidOperationException, NullReferenceException, OverflowException).</summary>
    [Theory]
    [InlineData("apiVersion: hybridserving.io/v1alpha1\nkind: LoraAdapter\nmetadata: [x]\n", null, "metadata.name is required")]
    [InlineData("apiVersion: hybridserving.io/v1alpha1\nkind: LoraAdapter\nmetadata:\n  name: hub\nspec:\n", "spec", null)]
    [InlineData("apiVersion: hybridserving.io/v1alpha1\nkind: LoraAdapter\nmetadata:\n  name: hub\nspec:\n  baseModel: m\n  adapterSource: {type: local, repository: /a}\n  schedulingConfig:\n    resourceRequirements: {memory: 99999999999999999999999Ei}\n",
        "spec.schedulingConfig.resourceRequirements.memory", null)]
    public void Manifests_of_the_wrong_shape_are_reported_not_crashes(string yaml, string? validationField, string? readError)
    {
        var document = Assert.Single(ManifestReader.Read("a.yaml", yaml).Documents);
        if (readError is not null)
        {
            Assert.Contains(readError, document.Error);
            return;
        }
        Assert.Null(document.Error);
        Assert.Contains(LoraAdapterValidator.ValidateAll(document.Adapter!), e => e.StartsWith(validationField!, StringComparison.Ordinal));
    }
}
