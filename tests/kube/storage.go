package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// The StorageClass of the node's volumes: the default class, so that PersistentVolumeClaims
// without a storageClassName (as charts write them) get a volume.
const (
	storageClassName = "local-path"
	provisionerName  = "kube-local.sso-operator.dev/local-path"
	// The size every volume reports: directories on the node's disk have no quota.
	volumeCapacity = "10Gi"
)

// runLocalVolumes is a dynamic provisioner for the node: for each claim of the local-path
// class that the scheduler has placed on the node (WaitForFirstConsumer), it creates a
// directory under root and a local PersistentVolume bound to the claim; when such a volume is
// released, it deletes the directory and the volume (reclaim policy Delete). This is the
// external-provisioner protocol (the PV controller leaves both steps to the provisioner).
func runLocalVolumes(ctx context.Context, kubeconfig, root, nodeName string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := ensureStorageClass(ctx, client); err != nil {
		return fmt.Errorf("create StorageClass %s: %w", storageClassName, err)
	}

	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	wake := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(wake) },
		UpdateFunc: func(any, any) { poke(wake) },
	}
	if _, err := claims.Informer().AddEventHandler(notify); err != nil {
		return err
	}
	if _, err := volumes.Informer().AddEventHandler(notify); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(30 * time.Second): // retry failed steps
		}
		pvcs, _ := claims.Lister().List(everything)
		for _, pvc := range pvcs {
			if err := provision(ctx, client, root, nodeName, pvc); err != nil {
				klog.ErrorS(err, "local-path: provisioning failed", "claim", pvc.Namespace+"/"+pvc.Name)
			}
		}
		pvs, _ := volumes.Lister().List(everything)
		for _, pv := range pvs {
			if err := reclaim(ctx, client, root, pv); err != nil {
				klog.ErrorS(err, "local-path: deleting a released volume failed", "volume", pv.Name)
			}
		}
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func ensureStorageClass(ctx context.Context, client kubernetes.Interface) error {
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	reclaim := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       provisionerName,
		VolumeBindingMode: &mode,
		ReclaimPolicy:     &reclaim,
	}
	_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func provision(ctx context.Context, client kubernetes.Interface, root, nodeName string, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil ||
		pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != storageClassName ||
		pvc.Annotations["volume.kubernetes.io/selected-node"] != nodeName {
		return nil
	}
	name := "pvc-" + string(pvc.UID)
	if _, err := client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil // created already; the PV controller binds it
	}
	path := filepath.Join(root, name)
	// Like other local-path provisioners: writable by whatever user the pod runs as.
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return err
	}
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": provisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(volumeCapacity)},
			AccessModes:                   modes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              storageClassName,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName},
				}}}},
			}},
		},
	}
	_, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func reclaim(ctx context.Context, client kubernetes.Interface, root string, pv *corev1.PersistentVolume) error {
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != provisionerName ||
		pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		pv.Spec.Local == nil || filepath.Dir(pv.Spec.Local.Path) != root {
		return nil
	}
	if err := os.RemoveAll(pv.Spec.Local.Path); err != nil {
		return err
	}
	err := client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

var everything = labels.Everything()
