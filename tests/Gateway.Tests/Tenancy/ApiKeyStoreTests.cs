using System.Security.Cryptography;
using System.Text;
using HybridServing.Gateway.Tenancy;
using HybridServing.TestKit;

namespace HybridServing.Gateway.Tests.Tenancy;

public sealed class ApiKeyStoreTests
{
    private static string Sha(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    [Fact]
    public void Finds_tenants_by_plain_or_hashed_key()
    {
        var store = ApiKeyStore.Load(new GatewayOptions
        {
            Tenants =
            {
                new TenantOptions { Name = "dev", ApiKey = "dev-key", Namespaces = { "default" } },
                new TenantOptions { Name = "team-b", ApiKeySha256 = Sha("b-key").ToLowerInvariant(), Namespaces = { "b" }, RequestsPerMinute = 5 },
            },
        });
        Assert.Equal("dev", store.Find("dev-key")?.Name);
        Assert.Equal("team-b", store.Find("b-key")?.Name);
        Assert.Equal(5, store.Find("b-key")?.RequestsPerMinute);
        Assert.Null(store.Find("dev-ke"));
        Assert.Null(store.Find(""));
    }

    [Fact]
    public void Finds_keys_longer_than_the_stack_buffer_and_non_ascii_keys()
    {
        var longKey = new string('k', 2000);
        var store = ApiKeyStore.Load(new GatewayOptions
        {
            Tenants =
            {
                new TenantOptions { Name = "long", ApiKey = longKey, Namespaces = { "default" } },
                new TenantOptions { Name = "unicode", ApiKey = "clé-ключ-🔑", Namespaces = { "default" } },
            },
        });
        Assert.Equal("long", store.Find(longKey)?.Name);
        Assert.Null(store.Find(longKey[..^1] + "x"));
        Assert.Equal("unicode", store.Find("clé-ключ-🔑")?.Name);
        Assert.Null(store.Find("cle-ключ-🔑"));
    }

    [Fact]
    public void Reads_a_keys_file_with_hashes_only()
    {
        using var dir = new TempDirectory("keys");
        var path = dir.Combine("keys.json");
        File.WriteAllText(path, $$"""{"tenants":[{"name":"a","apiKeySha256":"{{Sha("a-key")}}","namespaces":["ns-a"]}]}""");
        var store = ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = path } });
        Assert.Equal("a", store.Find("a-key")?.Name);
        Assert.Contains("ns-a", store.Find("a-key")!.Namespaces);
    }

    [Fact]
    public void The_keys_file_of_the_cluster_quick_start_is_read_as_it_says()
    {
        // docs/cluster-quickstart.md tells users to write this file into the hybridserving-api-keys Secret.
        var root = Contracts.Resources.CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("repository root not found");
        var doc = File.ReadAllText(Path.Combine(root, "docs", "cluster-quickstart.md")).ReplaceLineEndings("\n");
        var start = doc.IndexOf("```yaml\n# api-keys.yaml\n", StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/cluster-quickstart.md has no ```yaml block starting with '# api-keys.yaml'");
        start += "```yaml\n".Length;
        var block = doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)];
        const string placeholder = "<the 64 hex characters printed above>";
        Assert.Contains(placeholder, block);

        using var dir = new TempDirectory("keys");
        var path = dir.Combine("api-keys.yaml");
        File.WriteAllText(path, block.Replace(placeholder, Sha("quick-start-key").ToLowerInvariant(), StringComparison.Ordinal));
        var store = ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = path } });
        var tenant = store.Find("quick-start-key")!;
        Assert.Equal("team-a", tenant.Name);
        Assert.Equal(new[] { "default" }, tenant.Namespaces.Order(StringComparer.Ordinal));
        Assert.Equal(600, tenant.RequestsPerMinute);
        Assert.Equal(200000, tenant.TokensPerMinute);
        Assert.Null(store.Find("another-key"));
    }

    [Fact]
    public void Reads_a_yaml_keys_file_as_written_in_a_secret()
    {
        using var dir = new TempDirectory("keys");
        var path = dir.Combine("api-keys.yaml");
        File.WriteAllText(path, $"""
            # hybridserving-api-keys Secret, key api-keys.yaml
            tenants:
            - name: team-a
              apiKeySha256: {Sha("a-key").ToLowerInvariant()}
              namespaces: [team-a, shared]
              requestsPerMinute: 600
            - name: team-b
              apiKeySha256: "{Sha("b-key")}"
              namespaces:
              - team-b
              tokensPerMinute: 100000
            """);
        var store = ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = path } });
        Assert.Equal(2, store.Count);
        var a = store.Find("a-key")!;
        Assert.Equal("team-a", a.Name);
        Assert.True(a.Namespaces.SetEquals(["team-a", "shared"]));
        Assert.Equal(600, a.RequestsPerMinute);
        Assert.Equal(100000, store.Find("b-key")?.TokensPerMinute);
        Assert.Null(store.Find("c-key"));
    }

    [Theory]
    [InlineData("tenants:\n- name: a\n  apiKey: plain\n  namespaces: [x]\n", "holds a plain 'apiKey'")]
    [InlineData("tenants:\n- name: a\n  apiKeySha: '00'\n  namespaces: [x]\n", "is not valid YAML at line 3")]
    [InlineData("tenants:\n- name: a\n  namespaces: [x\n", "is not valid YAML")]
    [InlineData("tenants: 5\n", "is not valid YAML")]
    [InlineData("", "is empty")]
    public void Rejects_bad_yaml_key_files_with_specific_messages(string content, string expected)
    {
        using var dir = new TempDirectory("keys");
        var path = dir.Combine("api-keys.yaml");
        File.WriteAllText(path, content);
        var ex = Assert.Throws<InvalidOperationException>(() => ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = path } }));
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Hash_key_prints_what_a_keys_file_holds_and_refuses_an_empty_key()
    {
        var output = new StringWriter();
        Assert.Equal(0, HashKeyCommand.Run(new StringReader("a-key\n"), output, TextWriter.Null));
        Assert.Equal(Sha("a-key").ToLowerInvariant(), output.ToString().Trim());
        var error = new StringWriter();
        Assert.Equal(2, HashKeyCommand.Run(new StringReader(""), TextWriter.Null, error));
        Assert.Contains("no key on standard input", error.ToString());
    }

    [Theory]
    [InlineData("""{"tenants":[{"name":"a","apiKey":"plain","namespaces":["x"]}]}""", "holds a plain 'apiKey'")]
    [InlineData("""{"tenants":[{"name":"a","apiKeySha256":"zz","namespaces":["x"]}]}""", "not hexadecimal")]
    [InlineData("""{"tenants":[{"name":"a","apiKeySha256":"abcd","namespaces":["x"]}]}""", "must be 64 hex characters")]
    [InlineData("""{"tenants":[{"name":"a","apiKeySha256":"0000000000000000000000000000000000000000000000000000000000000000"}]}""", "'Namespaces' must list")]
    [InlineData("""{"tenants":[{"apiKeySha256":"0000000000000000000000000000000000000000000000000000000000000000","namespaces":["x"]}]}""", "'Name' is required")]
    [InlineData("""{"tenants":[{"name":"a","apiKeySha":"00","namespaces":["x"]}]}""", "is not valid")]
    [InlineData("""{"tenants":[""", "is not valid")]
    public void Rejects_bad_key_files_with_specific_messages(string content, string expected)
    {
        using var dir = new TempDirectory("keys");
        var path = dir.Combine("keys.json");
        File.WriteAllText(path, content);
        var ex = Assert.Throws<InvalidOperationException>(() => ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = path } }));
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Rejects_a_missing_file_duplicate_keys_and_both_key_forms()
    {
        Assert.Contains("does not exist", Assert.Throws<InvalidOperationException>(() =>
            ApiKeyStore.Load(new GatewayOptions { Tenancy = { KeysFile = "/nonexistent/keys.json" } })).Message);
        Assert.Contains("same API key", Assert.Throws<InvalidOperationException>(() => ApiKeyStore.Load(new GatewayOptions
        {
            Tenants = { new() { Name = "a", ApiKey = "k", Namespaces = { "x" } }, new() { Name = "b", ApiKeySha256 = Sha("k"), Namespaces = { "y" } } },
        })).Message);
        Assert.Contains("not both", Assert.Throws<InvalidOperationException>(() => ApiKeyStore.Load(new GatewayOptions
        {
            Tenants = { new() { Name = "a", ApiKey = "k", ApiKeySha256 = Sha("k"), Namespaces = { "x" } } },
        })).Message);
        Assert.Contains("Gateway:Tenants:0", Assert.Throws<InvalidOperationException>(() => ApiKeyStore.Load(new GatewayOptions
        {
            Tenants = { new() { Name = "a", Namespaces = { "x" } } },
        })).Message);
    }
}

public sealed class ApiKeyDirectoryTests
{
    private static string Sha(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static string File1(string name, string key, string ns) =>
        $$"""{"tenants":[{"name":"{{name}}","apiKeySha256":"{{Sha(key)}}","namespaces":["{{ns}}"]}]}""";

    [Fact]
    public void A_rotated_keys_file_replaces_the_keys_and_a_broken_one_is_ignored()
    {
        using var dir = new TempDirectory("keys");
        var path = dir.Combine("keys.json");
        File.WriteAllText(path, File1("a", "old-key", "ns-a"));
        var keys = new ApiKeyDirectory(Microsoft.Extensions.Options.Options.Create(new GatewayOptions { Tenancy = { KeysFile = path } }),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<ApiKeyDirectory>.Instance);
        Assert.Equal("a", keys.Current.Find("old-key")?.Name);
        Assert.False(keys.ReloadIfChanged());

        File.WriteAllText(path, File1("a", "new-key", "ns-a"));
        Assert.True(keys.ReloadIfChanged());
        Assert.Null(keys.Current.Find("old-key"));
        Assert.Equal("a", keys.Current.Find("new-key")?.Name);

        File.WriteAllText(path, """{"tenants":[{"name":"a","apiKey":"plain","namespaces":["x"]}]}""");
        Assert.False(keys.ReloadIfChanged());
        Assert.Equal("a", keys.Current.Find("new-key")?.Name);

        File.Delete(path);
        Assert.False(keys.ReloadIfChanged());
        Assert.Equal("a", keys.Current.Find("new-key")?.Name);
    }

    [Fact]
    public void A_secret_volume_update_swapping_the_data_symlink_is_picked_up()
    {
        // The kubelet's atomic writer: files live in a timestamped directory, `..data` links to it, and
        // each key is a link through `..data`; an update writes a new directory and renames a new link
        // over `..data`. The mounted path itself never changes.
        using var dir = new TempDirectory("secret");
        string Yaml(string key) => $"tenants:\n- name: a\n  apiKeySha256: {Sha(key)}\n  namespaces: [ns-a]\n";
        void Publish(string version, string key)
        {
            Directory.CreateDirectory(dir.Combine(version));
            File.WriteAllText(dir.Combine(version, "api-keys.yaml"), Yaml(key));
            File.CreateSymbolicLink(dir.Combine("..data_tmp"), version);
            // rename(2) of a link over a link, as the kubelet does (File.Move follows the link to a directory).
            using var mv = System.Diagnostics.Process.Start("mv", ["-T", dir.Combine("..data_tmp"), dir.Combine("..data")]);
            mv.WaitForExit();
            Assert.Equal(0, mv.ExitCode);
        }
        Publish("..2026_12_07_01", "old-key");
        File.CreateSymbolicLink(dir.Combine("api-keys.yaml"), "..data/api-keys.yaml");
        var keys = new ApiKeyDirectory(Microsoft.Extensions.Options.Options.Create(new GatewayOptions { Tenancy = { KeysFile = dir.Combine("api-keys.yaml") } }),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<ApiKeyDirectory>.Instance);
        Assert.Equal("a", keys.Current.Find("old-key")?.Name);

        Publish("..2026_12_07_02", "new-key");
        Directory.Delete(dir.Combine("..2026_12_07_01"), recursive: true);
        Assert.True(keys.ReloadIfChanged());
        Assert.Null(keys.Current.Find("old-key"));
        Assert.Equal("a", keys.Current.Find("new-key")?.Name);
    }
}
