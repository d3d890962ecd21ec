"""Make the portal usable: the reviewers group, and demo accounts on the embedded defaults."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

DEMO_ACCOUNTS = (("admin", True, False), ("reviewer", False, True), ("user", False, False))


class Command(BaseCommand):
    help = "Create the reviewers group (with the approve permission) and, on the embedded defaults, demo accounts."

    def add_arguments(self, parser):
        parser.add_argument("--demo-accounts", action="store_true", help="Create demo accounts whatever the mode.")
        parser.add_argument("--no-demo-accounts", action="store_true", help="Never create demo accounts.")

    def handle(self, *args, demo_accounts=False, no_demo_accounts=False, **options):
        group, _ = Group.objects.get_or_create(name="reviewers")
        permissions = Permission.objects.filter(
            content_type__app_label="models_registry",
            codename__in=[
                "approve_modelversion",
                "view_modelversion",
                "view_registeredmodel",
                "view_modelversionevent",
            ],
        )
        group.permissions.add(*permissions)
        self.stdout.write("reviewers group ready (can approve and reject model versions)")
        if settings.AWS_STORAGE_BUCKET_NAME:
            self._ensure_bucket(settings.AWS_STORAGE_BUCKET_NAME)
        if no_demo_accounts or not (demo_accounts or settings.EMBEDDED_MODE):
            return
        self._demo_accounts(group)

    def _ensure_bucket(self, name):
        from botocore.exceptions import ClientError
        from django.core.files.storage import default_storage

        client = default_storage.connection.meta.client
        try:
            client.head_bucket(Bucket=name)
        except ClientError:
            client.create_bucket(Bucket=name)
            self.stdout.write(f"created bucket {name}")

    def _demo_accounts(self, reviewers):
        store = settings.VAR_DIR / "demo-accounts.txt"
        known = {}
        if store.is_file():
            for line in store.read_text().splitlines():
                name, _, password = line.partition(" ")
                known[name] = password
        user_model = get_user_model()
        for username, is_superuser, is_reviewer in DEMO_ACCOUNTS:
            user = user_model.objects.filter(username=username).first()
            if user is None or username not in known:
                password = secrets.token_urlsafe(9)
                known[username] = password
                user = user or user_model(username=username, email=f"{username}@example.com")
                user.set_password(password)
                user.is_superuser = user.is_staff = is_superuser
                if is_reviewer:
                    user.is_staff = True  # reviewers work in the Django admin
                user.save()
            if is_reviewer:
                user.groups.add(reviewers)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text("".join(f"{name} {password}\n" for name, password in known.items()))
        store.chmod(0o600)
        self.stdout.write("demo accounts (embedded mode only; stored in var/demo-accounts.txt):")
        for username, *_ in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<9} password: {known[username]}")
